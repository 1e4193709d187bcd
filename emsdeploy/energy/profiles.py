"""Energy profiles as data: one TOML file per profile, every constant with its source.

Shipped profiles live in ``emsdeploy/profiles/energy/<name>.toml``; users pass their own file
by path. The format::

    name = "45nm-fp32"                      # required
    description = "..."                      # optional: tech_node, precision likewise
    [costs.ac]                               # required: pJ per synaptic op with a spike input
    pj = 0.9
    source = "Horowitz, ISSCC 2014: ..."     # required, where the number comes from
    note = "..."                             # optional
    [costs.mac]                              # required: pJ per synaptic op with a graded input
    ...

Optional costs (see :data:`COSTS`) that a profile leaves out are not priced, and the report
says so. The file is read by the one profile loader (:func:`emsdeploy.profiles.read_profile`);
every problem raises :class:`~emsdeploy.profiles.ProfileError` naming the file and the entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..profiles import KINDS, ProfileError, read_profile
from ..profiles import builtin_profiles as _builtin

__all__ = [
    "COSTS",
    "PROFILE_DIR",
    "REQUIRED",
    "Cost",
    "EnergyProfile",
    "ProfileError",
    "builtin_profiles",
    "load_profile",
]

PROFILE_DIR = KINDS["energy"].folder

# Every cost a profile may set: pJ per counted event (simulators/sops.py defines the events).
COSTS: dict[str, str] = {
    "ac": "per synaptic op whose input is a spike (an accumulate)",
    "mac": "per synaptic op whose input is graded: a current, a pixel or a SiLU output (a multiply-accumulate)",
    "neuron_update": "per neuron per time step (LIF or SiLU update)",
    "active_neuron_update": "per active neuron update (nonzero input or nonzero membrane)",
    "elementwise": "per elementwise op: adds of currents (Add, neuron fan-in), max-pool compares, readout sums",
    "weight_read": "per synaptic op (one weight read per event)",
    "membrane_read": "per neuron update",
    "membrane_write": "per neuron update",
    "ann_mac": "per MAC of the same-shape ANN baseline (default: the mac cost)",
}
REQUIRED = ("ac", "mac")
_TOP_KEYS = {"name", "description", "tech_node", "precision", "costs"}
_COST_KEYS = {"pj", "source", "note"}


@dataclass(frozen=True)
class Cost:
    pj: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class EnergyProfile:
    """Energies per counted event, in pJ, with their sources."""

    name: str
    costs: dict[str, Cost]
    description: str = ""
    tech_node: str = ""
    precision: str = ""
    path: Path | None = None

    def pj(self, key: str) -> float:
        """The cost of one ``key`` event; 0 if the profile does not price it (``ann_mac``: ``mac``)."""
        if key not in COSTS:
            raise ProfileError(f"no cost named {key!r}; costs: {', '.join(COSTS)}")
        if key == "ann_mac" and key not in self.costs:
            return self.costs["mac"].pj
        cost = self.costs.get(key)
        return cost.pj if cost is not None else 0.0

    @property
    def unpriced(self) -> list[str]:
        return [k for k in COSTS if k not in self.costs and k != "ann_mac"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tech_node": self.tech_node,
            "precision": self.precision,
            "file": str(self.path) if self.path else None,
            "costs_pJ": {
                k: {"pj": c.pj, "source": c.source, **({"note": c.note} if c.note else {})}
                for k, c in self.costs.items()
            },
            "not_priced": self.unpriced,
        }


def builtin_profiles() -> list[str]:
    return _builtin("energy")


def load_profile(name_or_path: str | Path) -> EnergyProfile:
    """Load a shipped profile by name, or a user's TOML file by path. Raises :class:`ProfileError`."""
    path, data = read_profile("energy", name_or_path, _TOP_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ProfileError(f'{path}: needs a name = "..." entry')
    for key in ("description", "tech_node", "precision"):
        if not isinstance(data.get(key, ""), str):
            raise ProfileError(f"{path}: {key} must be a string")
    costs_table = data.get("costs")
    if not isinstance(costs_table, dict):
        raise ProfileError(f"{path}: needs a [costs.<name>] table for each of {', '.join(REQUIRED)}")
    costs: dict[str, Cost] = {}
    for key, entry in costs_table.items():
        where = f"{path}: [costs.{key}]"
        if key not in COSTS:
            raise ProfileError(f"{where}: unknown cost; known costs: {', '.join(COSTS)}")
        if not isinstance(entry, dict):
            raise ProfileError(f'{where}: must be a table with pj = <number> and source = "..."')
        extra = sorted(set(entry) - _COST_KEYS)
        if extra:
            raise ProfileError(f"{where}: unknown key {extra[0]!r}; allowed: {', '.join(sorted(_COST_KEYS))}")
        pj = entry.get("pj")
        if isinstance(pj, bool) or not isinstance(pj, (int, float)) or not math.isfinite(pj) or pj < 0:
            raise ProfileError(f"{where}: pj must be a finite number >= 0 (picojoules), got {pj!r}")
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            raise ProfileError(f'{where}: needs source = "..." (where the number comes from)')
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise ProfileError(f"{where}: note must be a string")
        costs[key] = Cost(float(pj), source.strip(), note)
    missing = [k for k in REQUIRED if k not in costs]
    if missing:
        raise ProfileError(f"{path}: missing [costs.{missing[0]}]; every profile prices {', '.join(REQUIRED)}")
    return EnergyProfile(
        name.strip(),
        costs,
        data.get("description", ""),
        data.get("tech_node", ""),
        data.get("precision", ""),
        path,
    )
