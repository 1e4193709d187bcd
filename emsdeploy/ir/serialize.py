"""Versioned HDF5 file format for IR graphs (``.emsir``).

Layout::

    /                attrs: format = "emsdeploy.ir", schema_version, graph_attrs (JSON), outputs (JSON)
    /nodes/<00000>   attrs: name, op, inputs (JSON), meta (JSON), params (JSON: the non-array fields)
                     datasets: one per array field (Fletcher-32 checksummed), named after the field

The first 512 bytes are an HDF5 user block holding the SHA-256 of the rest (our seal): a cut or
damaged file is refused before HDF5 parses it. Files are read through the checked reader
:func:`emsdeploy.fileio.open_hdf5`, which refuses links, external storage, virtual datasets and
declared sizes that the file does not back.

Serialization is generic over the op dataclasses' fields: a new op needs no code here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import EmsdeployError, IRFormatError, IRValidationError
from ..fileio import USERBLOCK_SIZE, atomic_write, open_hdf5, seal_hdf5
from .graph import Graph
from .ops import OPS

__all__ = ["FORMAT", "SCHEMA_VERSION", "read_ir", "write_ir"]

FORMAT = "emsdeploy.ir"
SCHEMA_VERSION = 1


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


def _write(graph: Graph, path: Path) -> None:
    with h5py.File(path, "w", track_order=True, userblock_size=USERBLOCK_SIZE) as f:
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["graph_attrs"] = _json(graph.attrs)
        f.attrs["outputs"] = _json(graph.outputs)
        nodes = f.create_group("nodes", track_order=True)
        for i, node in enumerate(graph):
            g = nodes.create_group(f"{i:05d}")
            g.attrs["name"] = node.name
            g.attrs["op"] = node.op.type_name
            g.attrs["inputs"] = _json(list(node.inputs))
            g.attrs["meta"] = _json(node.meta)
            params = {}
            for fld in dataclasses.fields(node.op):
                value = getattr(node.op, fld.name)
                if isinstance(value, np.ndarray):
                    checked = value.ndim > 0 and value.size > 0
                    big = checked and value.nbytes >= 1 << 16  # weights, per-neuron arrays: gzip-1 + shuffle
                    g.create_dataset(
                        fld.name,
                        data=value,
                        fletcher32=checked,
                        chunks=True if checked else None,
                        compression="gzip" if big else None,
                        compression_opts=1 if big else None,
                        shuffle=big,
                    )
                else:
                    params[fld.name] = list(value) if isinstance(value, tuple) else value
            g.attrs["params"] = _json(params)
    seal_hdf5(path)


def _finite(value: Any, where: str) -> Any:
    """Float arrays of an IR file must be finite: NaN weights would become NaN spikes or
    saturated integers in every export."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
        bad = value.reshape(-1)[~np.isfinite(value.reshape(-1))][0]
        raise IRFormatError(f"{where} holds {bad} (weights and parameters must be finite)")
    return value


def write_ir(graph: Graph, path: str | Path) -> Path:
    """Validate and write ``graph`` to ``path`` atomically."""
    graph.validate()
    return atomic_write(path, lambda tmp: _write(graph, tmp))


def read_ir(path: str | Path) -> Graph:
    """Read an IR file. Raises :class:`IRFormatError` for damaged, foreign or too-new files."""
    path = Path(path)
    with open_hdf5(path, error=IRFormatError, compressed=True) as f:
        if f.attrs.get("format") != FORMAT:
            raise IRFormatError(f"{path}: not an emsdeploy IR file (format attribute {f.attrs.get('format')!r})")
        version = f.attrs.get("schema_version")
        if not isinstance(version, (int, np.integer)):
            raise IRFormatError(f"{path}: schema_version is missing")
        if int(version) > SCHEMA_VERSION:
            raise IRFormatError(
                f"{path}: IR schema version {int(version)} is newer than this emsdeploy reads ({SCHEMA_VERSION}); upgrade emsdeploy"
            )
        try:
            graph = Graph(json.loads(f.attrs["graph_attrs"]))
            outputs = json.loads(f.attrs["outputs"])
            for key in sorted(f["nodes"]):
                g = f["nodes"][key]
                where = f"{path}: node {key}"
                op_name = str(g.attrs["op"])
                if op_name not in OPS:
                    raise IRFormatError(f"{where}: unknown op {op_name!r}; this emsdeploy knows {', '.join(OPS)}")
                cls = OPS[op_name]
                kwargs = json.loads(g.attrs["params"])
                for fld in dataclasses.fields(cls):
                    if fld.name in g:
                        kwargs[fld.name] = _finite(
                            g[fld.name][()], f"{path}: node {g.attrs['name']!s} field {fld.name}"
                        )
                unknown = set(kwargs) - {fl.name for fl in dataclasses.fields(cls)}
                if unknown:
                    raise IRFormatError(f"{where}: {op_name} has no fields {sorted(unknown)}")
                op = cls(**kwargs)
                graph.add(str(g.attrs["name"]), op, json.loads(g.attrs["inputs"]), json.loads(g.attrs["meta"]))
            graph.outputs = list(outputs)
        except IRFormatError:
            raise
        except EmsdeployError as e:
            if not isinstance(e, IRValidationError):
                raise
            raise IRFormatError(f"{path}: damaged IR file ({type(e).__name__}: {e})") from None
        except Exception as e:  # h5py, json and the op constructors raise many kinds on damaged data
            raise IRFormatError(
                f"{path}: damaged IR file ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
            ) from None
    try:
        return graph.validate()
    except IRValidationError as e:
        raise IRFormatError(f"{path}: the stored graph is invalid: {e}") from None
