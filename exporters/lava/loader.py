"""Open an exported Lava network (lean: no torch, so that Lava's forked workers stay small)."""

from __future__ import annotations

from pathlib import Path

from emsdeploy.errors import ExportError

from .dag import read_dag
from .network import LavaNetwork
from .netx import NetxNetwork

__all__ = ["load"]


def load(path: str | Path, fast_models: bool = True) -> LavaNetwork:
    """Rebuild the network an export wrote: a folder (netx chain or DAG) or a file
    (``network.lava.h5``, or a netx ``network.net`` with ``host.lava.h5`` beside it)."""
    path = Path(path)
    if path.is_dir():
        if (path / "network.net").exists() and (path / "host.lava.h5").exists():
            return NetxNetwork(path / "network.net", read_dag(path / "host.lava.h5"))
        if (path / "network.lava.h5").exists():
            return LavaNetwork(read_dag(path / "network.lava.h5"), fast_models=fast_models)
        raise ExportError(f"{path}: no network.lava.h5, nor network.net with host.lava.h5")
    if not path.exists():
        raise ExportError(f"{path}: no such file")
    if path.suffix == ".net":
        return NetxNetwork(path, read_dag(path.with_name("host.lava.h5")))
    return LavaNetwork(read_dag(path), fast_models=fast_models)
