"""A checksum manifest for artifact folders (Lava exports).

The exporter writes ``manifest.json`` last: every file of the folder with its size and SHA-256.
The loader checks it before opening anything, so a missing, cut, damaged or swapped file (a
mapping report that does not match the network, say) is one clear error instead of a traceback
from deep inside HDF5 or lava-nc, or a silently different network.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import EmsdeployError, ExportError
from .atomic import atomic_write_text
from .hdf5 import sha256_file

__all__ = ["MANIFEST", "manifest_names", "verify_manifest", "write_manifest"]

MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 1 << 20  # a few hundred bytes per file; far more files than any export writes


def write_manifest(folder: str | Path, fmt: str) -> Path:
    """List every file of ``folder`` (not the manifest) with its size and SHA-256."""
    folder = Path(folder)
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    body = {"format": fmt, "version": 1, "files": files}
    return atomic_write_text(folder / MANIFEST, json.dumps(body, indent=1) + "\n")


def _read(folder: Path, fmt: str, error: type[EmsdeployError]) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise error(f"{folder}: no {MANIFEST} (not a complete emsdeploy export, or an older one); export it again")
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise error(f"{path}: larger than {_MAX_MANIFEST_BYTES:,} bytes; not one of our manifests")
    try:
        body = json.loads(path.read_bytes().decode("utf-8"))
        files = body["files"]
        ok = body.get("format") == fmt and isinstance(files, dict)
        ok = ok and all(isinstance(v, dict) and isinstance(v.get("bytes"), int) and isinstance(v.get("sha256"), str)
                        for v in files.values())  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise error(f"{path}: damaged or foreign manifest (expected format {fmt!r}); export it again")
    return files


def manifest_names(folder: str | Path) -> set[str]:
    """The names an earlier export listed in ``folder`` (empty when there is no readable manifest)."""
    try:
        return set(json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))["files"]) | {MANIFEST}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def verify_manifest(
    folder: str | Path, fmt: str, *, only: str | None = None, error: type[EmsdeployError] = ExportError
) -> None:
    """Check every listed file (or just ``only``) against its size and SHA-256; files that are
    not listed are refused too, so nothing unverified is ever opened from the folder."""
    folder = Path(folder)
    files = _read(folder, fmt, error)
    present = {p.name for p in folder.iterdir() if p.name != MANIFEST}
    extra = sorted(present - set(files))
    if extra and only is None:
        raise error(f"{folder}: {extra[0]} is not listed in {MANIFEST}; the folder was changed after export")
    checked = [(n, e) for n, e in sorted(files.items()) if only is None or n == only]
    for name, entry in checked:  # sizes first: a cut or missing file fails before any hashing
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise error(f"{path}: missing (listed in {MANIFEST}); export it again")
        if path.stat().st_size != entry["bytes"]:
            raise error(f"{path}: {path.stat().st_size:,} bytes, {MANIFEST} says {entry['bytes']:,} (cut or changed)")
    for name, entry in checked:
        path = folder / name
        if sha256_file(path) != entry["sha256"]:
            raise error(f"{path}: checksum mismatch with {MANIFEST} (damaged or changed); export it again")
    if only is not None and only not in files:
        raise error(f"{folder / only}: not listed in {MANIFEST}")
