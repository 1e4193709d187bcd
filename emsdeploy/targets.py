"""Deployment targets as data: which ops a backend runs natively, as custom processes, or not.

A target lives in ``emsdeploy/profiles/targets/<name>.toml``::

    name = "lava"
    description = "..."
    flow = "lava"   # the pass flow its exporter runs (emsdeploy.passes.flows.FLOWS); optional
    [chip]      # op type -> input kinds run by standard processes
    Conv2d = ["spike", "current"]
    [custom]    # op type -> input kinds run only by custom (simulation-only) processes
    MaxPool2d = ["current"]

Every other (op, input kinds) pair runs on the host. Users can pass their own file; it is read
by the one profile loader (:func:`emsdeploy.profiles.read_profile`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .ir import OPS, Kind
from .profiles import KINDS, ProfileError, builtin_profiles, read_profile

__all__ = ["TARGET_DIR", "Target", "builtin_targets", "load_target"]

TARGET_DIR = KINDS["target"].folder
_KINDS = {k.value for k in Kind}
_TOP_KEYS = {"name", "description", "flow", "chip", "custom"}


@dataclass(frozen=True)
class Target:
    name: str
    description: str = ""
    chip: dict[str, frozenset[str]] = field(default_factory=dict)
    custom: dict[str, frozenset[str]] = field(default_factory=dict)
    flow: str | None = None  # the pass flow the target's exporter runs

    def placement(self, op_type: str, input_kinds: set[str]) -> str:
        """``"chip"``, ``"custom"`` or ``"host"`` for an op reading values of ``input_kinds``."""
        if op_type in self.chip and input_kinds <= self.chip[op_type]:
            return "chip"
        if op_type in self.custom and input_kinds <= self.custom[op_type]:
            return "custom"
        return "host"


def builtin_targets() -> list[str]:
    return builtin_profiles("target")


def load_target(name_or_path: str | Path) -> Target:
    """Load a shipped target by name, or a user's TOML file by path. Raises :class:`ProfileError`."""
    path, data = read_profile("target", name_or_path, _TOP_KEYS)
    tables: dict[str, dict[str, frozenset[str]]] = {}
    for section in ("chip", "custom"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ProfileError(f"{path}: [{section}] must be a table of op type -> list of input kinds")
        parsed = {}
        for op, kinds in table.items():
            if op not in OPS:
                raise ProfileError(f"{path}: [{section}] names unknown op {op!r}; IR ops: {', '.join(OPS)}")
            if not isinstance(kinds, list) or not set(kinds) <= _KINDS:
                raise ProfileError(
                    f"{path}: [{section}] {op} must list input kinds from {sorted(_KINDS)}, got {kinds!r}"
                )
            parsed[op] = frozenset(kinds)
        tables[section] = parsed
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError(f'{path}: needs a name = "..." entry')
    flow = data.get("flow")
    if flow is not None and (not isinstance(flow, str) or not flow):
        raise ProfileError(f'{path}: flow must name a pass flow, e.g. flow = "lava", got {flow!r}')
    return Target(name, str(data.get("description", "")), tables["chip"], tables["custom"], flow)
