"""Deployment targets as data: which ops a backend runs natively, as custom processes, or not.

A target lives in ``emsdeploy/profiles/targets/<name>.toml``::

    name = "lava"
    description = "..."
    [chip]      # op type -> input kinds run by standard processes
    Conv2d = ["spike", "current"]
    [custom]    # op type -> input kinds run only by custom (simulation-only) processes
    MaxPool2d = ["current"]

Every other (op, input kinds) pair runs on the host. Users can pass their own file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import EmsdeployError
from .fileio import read_text
from .ir import OPS, Kind

__all__ = ["TARGET_DIR", "Target", "builtin_targets", "load_target"]

TARGET_DIR = Path(__file__).parent / "profiles" / "targets"
_KINDS = {k.value for k in Kind}


@dataclass(frozen=True)
class Target:
    name: str
    description: str = ""
    chip: dict[str, frozenset[str]] = field(default_factory=dict)
    custom: dict[str, frozenset[str]] = field(default_factory=dict)

    def placement(self, op_type: str, input_kinds: set[str]) -> str:
        """``"chip"``, ``"custom"`` or ``"host"`` for an op reading values of ``input_kinds``."""
        if op_type in self.chip and input_kinds <= self.chip[op_type]:
            return "chip"
        if op_type in self.custom and input_kinds <= self.custom[op_type]:
            return "custom"
        return "host"


def builtin_targets() -> list[str]:
    return sorted(p.stem for p in TARGET_DIR.glob("*.toml"))


def load_target(name_or_path: str | Path) -> Target:
    """Load a shipped target by name, or a user's TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = TARGET_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise EmsdeployError(f"unknown target {name_or_path!r}; shipped targets: {', '.join(builtin_targets())}")
    try:
        data = tomllib.loads(read_text(path))  # size-bounded
    except OSError as e:
        raise EmsdeployError(f"{path}: cannot read target file ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise EmsdeployError(f"{path}: not valid TOML: {e}") from None
    tables: dict[str, dict[str, frozenset[str]]] = {}
    for section in ("chip", "custom"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise EmsdeployError(f"{path}: [{section}] must be a table of op type -> list of input kinds")
        parsed = {}
        for op, kinds in table.items():
            if op not in OPS:
                raise EmsdeployError(f"{path}: [{section}] names unknown op {op!r}; IR ops: {', '.join(OPS)}")
            if not isinstance(kinds, list) or not set(kinds) <= _KINDS:
                raise EmsdeployError(
                    f"{path}: [{section}] {op} must list input kinds from {sorted(_KINDS)}, got {kinds!r}"
                )
            parsed[op] = frozenset(kinds)
        tables[section] = parsed
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise EmsdeployError(f'{path}: needs a name = "..." entry')
    return Target(name, str(data.get("description", "")), tables["chip"], tables["custom"])
