"""Profiles: every TOML file emsdeploy reads, shipped here as data, read by one loader.

Four kinds, each with its typed class in its own module: deployment targets
(``targets/<name>.toml``, :mod:`emsdeploy.targets`), Loihi fixed-point profiles
(``<name>.toml``, :mod:`.loihi`), energy profiles (``energy/<name>.toml``,
:mod:`emsdeploy.energy.profiles`) and chip descriptions (``chips/<name>.toml``,
:mod:`emsdeploy.exporters.lava.fit`). A user names a shipped profile, or gives the path of their
own file: that file is untrusted, so it is read size-bounded (:func:`emsdeploy.fileio.read_text`)
and every problem is one :class:`ProfileError` line naming the file and the field (the CLI
exits 2 on it).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EmsdeployError
from ..fileio import read_toml

__all__ = ["KINDS", "PROFILE_DIR", "ProfileError", "builtin_profiles", "read_profile", "resolve_profile"]

PROFILE_DIR = Path(__file__).resolve().parent


class ProfileError(EmsdeployError):
    """A profile (target, Loihi or energy TOML) that is unknown, unreadable or malformed."""


@dataclass(frozen=True)
class Kind:
    folder: Path  # where the shipped files of this kind live
    what: str  # how messages name one ("target", "energy profile")
    hint: str = ""  # appended to "unknown <what>" errors


KINDS: dict[str, Kind] = {
    "target": Kind(PROFILE_DIR / "targets", "target"),
    "loihi": Kind(PROFILE_DIR, "Loihi profile"),
    "energy": Kind(
        PROFILE_DIR / "energy", "energy profile", "Or pass the path of your own .toml file (see docs/energy.md)."
    ),
    "chip": Kind(PROFILE_DIR / "chips", "chip", "Or pass the path of a .toml chip file (see docs/fit.md)."),
}


def builtin_profiles(kind: str) -> list[str]:
    """The names of the shipped profiles of ``kind``."""
    return sorted(p.stem for p in KINDS[kind].folder.glob("*.toml"))


def resolve_profile(kind: str, name_or_path: str | Path) -> Path:
    """The file a user means: a path (it ends in ``.toml``, names a folder, or is an existing
    file) or the name of a shipped profile of ``kind``."""
    k = KINDS[kind]
    text = str(name_or_path)
    path = Path(text)
    if path.suffix.lower() == ".toml" or "/" in text or "\\" in text or path.is_file():
        if not path.is_file():
            raise ProfileError(f"{path}: no such profile file")
        return path
    shipped = k.folder / f"{text}.toml"
    if not shipped.is_file():
        plural = "targets" if kind == "target" else "profiles"
        raise ProfileError(
            f"unknown {k.what} {text!r}; shipped {plural}: {', '.join(builtin_profiles(kind))}"
            + (f". {k.hint}" if k.hint else "")
        )
    return shipped


def read_profile(
    kind: str, name_or_path: str | Path, allowed: Collection[str] | None = None
) -> tuple[Path, dict[str, Any]]:
    """The file ``name_or_path`` resolves to and its TOML content; the one reader of profiles.

    Args:
        allowed: the top-level entries a file of this kind may have (a misspelt table is an
            error, never silently ignored); None accepts any.

    Raises:
        ProfileError: unknown name, missing or unreadable file, over the size limit, not text,
            not TOML; one line naming the file.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown profile kind {kind!r}; kinds: {', '.join(KINDS)}")
    path = resolve_profile(kind, name_or_path)
    data = read_toml(path, error=ProfileError)  # size-bounded, UTF-8
    unknown = sorted(set(data) - set(allowed)) if allowed is not None else []
    if unknown:
        raise ProfileError(f"{path}: unknown entry {unknown[0]!r}; allowed: {', '.join(sorted(allowed or ()))}")
    return path, data
