"""Open an exported Lava network (lean: no torch, so that Lava's forked workers stay small).

A folder is checked against the ``manifest.json`` its export wrote (sizes and SHA-256 of every
file) before anything in it is opened; each HDF5 file then goes through the checked reader
:func:`emsdeploy.fileio.open_hdf5` (no links, no external storage, bounded sizes).
"""

from __future__ import annotations

from pathlib import Path

from emsdeploy.errors import EmsdeployError, ExportError
from emsdeploy.fileio import MANIFEST, open_hdf5, verify_manifest

from .dag import read_dag
from .network import LavaNetwork
from .netx import NetxNetwork

__all__ = ["FOLDER_FORMAT", "load"]

FOLDER_FORMAT = "emsdeploy.lava-export"


def load(path: str | Path, fast_models: bool = True) -> LavaNetwork:
    """Rebuild the network an export wrote: a folder (netx chain or DAG) or a file
    (``network.lava.h5``, or a netx ``network.net`` with ``host.lava.h5`` beside it)."""
    path = Path(path)
    try:
        return _load(path, fast_models)
    except EmsdeployError:
        raise
    except Exception as e:  # damage that passed the checks and broke a reader: still one line
        raise ExportError(
            f"{path}: damaged Lava export ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None


def _load(path: Path, fast_models: bool) -> LavaNetwork:
    if path.is_dir():
        verify_manifest(path, FOLDER_FORMAT)
        if (path / "network.net").exists() and (path / "host.lava.h5").exists():
            return _netx(path / "network.net")
        if (path / "network.lava.h5").exists():
            return LavaNetwork(read_dag(path / "network.lava.h5"), fast_models=fast_models)
        raise ExportError(f"{path}: no network.lava.h5, nor network.net with host.lava.h5")
    if not path.exists():
        raise ExportError(f"{path}: no such file")
    if (path.parent / MANIFEST).exists():
        verify_manifest(path.parent, FOLDER_FORMAT, only=path.name)
        if path.suffix == ".net":
            verify_manifest(path.parent, FOLDER_FORMAT, only="host.lava.h5")
    if path.suffix == ".net":
        return _netx(path)
    return LavaNetwork(read_dag(path), fast_models=fast_models)


def _netx(net: Path) -> NetxNetwork:
    with open_hdf5(net, error=ExportError, compressed=True):
        pass  # lava-dl's netx opens it itself later; the checked reader vets it first
    return NetxNetwork(net, read_dag(net.with_name("host.lava.h5")))
