"""Write a NIR graph to its HDF5 file one node at a time.

``nir.write`` serialises the whole graph first (``NIRGraph.to_dict`` deep-copies every
parameter array, twice for nodes of the top graph), so its peak memory is a few times the
graph's parameters. At paper sizes the per-neuron LIF parameters alone are gigabytes, held by
the exporter as zero-stride broadcast views (:func:`.export.full`) that a deep copy
materialises. This writer produces the same file layout — the datasets, dtypes and
compression that ``nir.write`` writes, so ``nir.read`` loads it — but converts and writes one
node at a time, so at most one node's arrays are materialised at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np

from emsdeploy.fileio import atomic_write

__all__ = ["write_nir"]


def _write_dict(group: h5py.Group, data: dict[str, Any], compression: Any) -> None:
    """One node's dict as nir.write lays it out: strings as UTF-8, arrays compressed, dicts as groups."""
    for key, value in data.items():
        if key == "metadata":
            if value:
                _write_dict(group.create_group(key), value, compression)
        elif isinstance(value, str):
            group.create_dataset(key, data=value, dtype=h5py.string_dtype())
        elif isinstance(value, np.ndarray):
            group.create_dataset(key, data=value, dtype=value.dtype, compression=compression)
        elif isinstance(value, dict):
            _write_dict(group.create_group(str(key)), value, compression)
        else:
            group.create_dataset(key, data=value)


def _write_graph(group: h5py.Group, graph: nir.NIRGraph, compression: Any) -> None:
    group.create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())
    group.create_dataset("edges", data=[tuple(e) for e in graph.edges])
    if graph.metadata:
        _write_dict(group.create_group("metadata"), dict(graph.metadata), compression)
    nodes = group.create_group("nodes")
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            _write_graph(nodes.create_group(name), node, compression)
        else:
            _write_dict(nodes.create_group(name), node.to_dict(), compression)  # this node's copy only


def write_nir(path: str | Path, graph: nir.NIRGraph, compression: Any = "gzip") -> Path:
    """Write ``graph`` to ``path`` (atomically: beside it, then renamed) in nir's HDF5 layout.

    ``compression`` as for ``nir.write`` (h5py: ``"gzip"``, ``"lzf"``, a gzip level, or None).
    """

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("version", data=nir.version, dtype=h5py.string_dtype())
            _write_graph(f.create_group("node"), graph, compression)

    return atomic_write(path, write)
