"""The Loihi fixed-point profile as data (``emsdeploy/profiles/loihi_bitacc.toml``), read by the
quantize pass, ref-fixed and the Lava design rules alike.

Every limit the quantize pass, ref-fixed and the Lava design rules use comes from here; each
value in the TOML file names its source in lava-nc. The quantize pass copies the profile into
``graph.attrs["loihi"]`` so that a simulator can run a quantized graph without reading files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from . import ProfileError, read_profile

__all__ = ["LoihiProfile", "load_profile"]


@dataclass(frozen=True)
class LoihiProfile:
    """Fixed-point widths and constants (see the TOML file for each value's source)."""

    name: str
    du_bits: int
    dv_bits: int
    vth_bits: int
    bias_mant_bits: int
    bias_exp_bits: int
    uv_bits: int
    decay_shift: int
    act_shift: int
    vth_shift: int
    ds_offset: int
    dm_offset: int
    weight_bits: int
    weight_exp_min: int
    weight_exp_max: int
    conv_accumulator_bits: int
    sparse_accumulator_bits: int
    max_delay: int
    graded_message_bits: int
    float_exact_bits: int
    host_weight_bits: int
    host_max_shift: int

    # --- derived ranges -------------------------------------------------------------------
    @property
    def decay_unity(self) -> int:
        return 1 << self.decay_shift

    @property
    def du_max(self) -> int:
        return (1 << self.du_bits) - 1

    @property
    def dv_max(self) -> int:
        return (1 << self.dv_bits) - 1

    @property
    def vth_max(self) -> int:
        return (1 << self.vth_bits) - 1

    @property
    def bias_mant_range(self) -> tuple[int, int]:
        half = 1 << (self.bias_mant_bits - 1)
        return (-half, half - 1)

    @property
    def bias_exp_max(self) -> int:
        return (1 << self.bias_exp_bits) - 1

    @property
    def weight_range(self) -> tuple[int, int]:
        half = 1 << (self.weight_bits - 1)
        return (-half, half - 1)

    @property
    def host_weight_range(self) -> tuple[int, int]:
        half = 1 << (self.host_weight_bits - 1)
        return (-half, half - 1)

    @property
    def uv_half(self) -> int:
        """2**(uv_bits-1): u wraps above it, v saturates at ±(it − 1)."""
        return 1 << (self.uv_bits - 1)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoihiProfile:
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise ProfileError(f"Loihi profile is missing {sorted(missing)}")
        return cls(**{k: data[k] for k in names})


_KEYS = {
    "neuron": (
        "du_bits",
        "dv_bits",
        "vth_bits",
        "bias_mant_bits",
        "bias_exp_bits",
        "uv_bits",
        "decay_shift",
        "act_shift",
        "vth_shift",
        "ds_offset",
        "dm_offset",
    ),
    "synapse": (
        "weight_bits",
        "weight_exp_min",
        "weight_exp_max",
        "conv_accumulator_bits",
        "sparse_accumulator_bits",
        "max_delay",
        "graded_message_bits",
        "float_exact_bits",
    ),
}


def load_profile(name_or_path: str | Path = "loihi_bitacc") -> LoihiProfile:
    """Load a shipped profile by name or a user's TOML file by path. Raises :class:`ProfileError`."""
    path, data = read_profile("loihi", name_or_path)
    values: dict[str, Any] = {"name": str(data.get("name", path.stem))}
    for section, keys in _KEYS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ProfileError(f"{path}: [{section}] must be a table")
        for key in keys:
            if key not in table:
                raise ProfileError(f"{path}: [{section}] needs {key} (with a {key}_source)")
            if f"{key}_source" not in table:
                raise ProfileError(f"{path}: [{section}] {key} has no source")
            values[key] = _int(path, section, key, table[key])
    host = data.get("host", {})
    if not isinstance(host, dict):
        raise ProfileError(f"{path}: [host] must be a table")
    for key in ("weight_bits", "max_shift"):
        if key not in host or f"{key}_source" not in host:
            raise ProfileError(f"{path}: [host] needs {key} and {key}_source")
        values[f"host_{key}"] = _int(path, "host", key, host[key])
    return LoihiProfile(**values)


def _int(path: Path, section: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{path}: [{section}] {key} must be an integer, got {value!r}")
    return value
