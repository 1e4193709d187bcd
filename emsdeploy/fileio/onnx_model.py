"""Checked ONNX reading (stepwise models given to ``run`` and ``verify --onnx``).

The file is read whole (bounded), parsed, and refused when a tensor keeps its data in another
file (``data_location = EXTERNAL``), when a tensor declares more elements than it holds or than
the bounds allow, when a graph input or output declares a static shape above the bounds (the
runtime allocates state from them), or when ``onnx.checker`` rejects it. onnxruntime then gets
the checked bytes, never the path, so it cannot resolve external data either.

Our exporter :func:`seal_onnx` each model: ``metadata_props["emsdeploy.sha256"]`` is the
SHA-256 of the model serialised without that entry. A sealed model is verified, so damage that
still parses (a flipped weight bit) is refused instead of giving different detections.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import EmsdeployError, ExportError
from .limits import check_limit

__all__ = ["CHECKSUM_KEY", "load_onnx", "model_digest", "seal_onnx"]

CHECKSUM_KEY = "emsdeploy.sha256"


def model_digest(model: Any) -> str:
    """SHA-256 of ``model`` serialised deterministically without the checksum entry."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    keep = [p for p in copy.metadata_props if p.key != CHECKSUM_KEY]
    del copy.metadata_props[:]
    copy.metadata_props.extend(keep)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def seal_onnx(model: Any) -> Any:
    """Add (or replace) the checksum entry of ``model`` in place; returns it."""
    digest = model_digest(model)
    keep = [p for p in model.metadata_props if p.key != CHECKSUM_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    entry = model.metadata_props.add()
    entry.key, entry.value = CHECKSUM_KEY, digest
    return model


def load_onnx(path: str | Path, *, error: type[EmsdeployError] = ExportError) -> tuple[Any, bytes]:
    """Read and check the ONNX file ``path``; returns ``(ModelProto, bytes)`` for the runtime."""

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    check_limit("onnx_bytes", path.stat().st_size, f"{path}: file size")
    data = path.read_bytes()
    return check_onnx_bytes(data, str(path), error=error), data


def check_onnx_bytes(data: bytes, where: str, *, error: type[EmsdeployError] = ExportError) -> Any:
    """Parse and check serialised ONNX ``data``; ``where`` names it in errors."""
    import onnx

    check_limit("onnx_bytes", len(data), f"{where}: size")
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise error(f"{where}: not a readable ONNX model (cut or corrupt: {type(e).__name__})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if CHECKSUM_KEY in props and model_digest(model) != props[CHECKSUM_KEY]:
        raise error(f"{where}: checksum mismatch (the file is damaged); export it again")
    try:
        for name, tensor in _tensors(model.graph):
            _check_tensor(tensor, name, where)
        for value in [*model.graph.input, *model.graph.output]:
            dims = value.type.tensor_type.shape.dim
            static = [d.dim_value for d in dims if d.HasField("dim_value")]
            if any(d < 0 for d in static):
                raise error(f"{where}: {value.name} has a negative dimension {static}")
            check_limit("onnx_tensor_elements", math.prod(static), f"{where}: tensor {value.name} {static}")
        _check_props(props, where)
        onnx.checker.check_model(model)
    except EmsdeployError as e:
        raise error(str(e)) from None
    except onnx.checker.ValidationError as e:
        raise error(f"{where}: fails onnx.checker: {' '.join(str(e).split())[:200]}") from None
    return model


def _tensors(graph: Any) -> Iterator[tuple[str, Any]]:
    """Every tensor in ``graph``: initialisers, sparse initialisers, and node attributes,
    subgraphs (If/Loop/Scan bodies) included."""
    for t in graph.initializer:
        yield t.name, t
    for s in graph.sparse_initializer:
        yield s.values.name, s.values
        yield s.indices.name, s.indices
    for node in graph.node:
        for attr in node.attribute:
            where = f"{node.name or node.op_type}.{attr.name}"
            if attr.HasField("t"):
                yield where, attr.t
            for t in attr.tensors:
                yield where, t
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


# bytes per element of ONNX TensorProto data types with a fixed size
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2}


def _check_tensor(t: Any, name: str, where: str) -> None:
    import onnx

    if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
        files = [e.value for e in t.external_data if e.key == "location"]
        raise ExportError(
            f"{where}: tensor {name} keeps its data in another file ({', '.join(files) or 'external'}); refused"
        )
    if any(d < 0 for d in t.dims):
        raise ExportError(f"{where}: tensor {name} has a negative dimension {list(t.dims)}")
    n = math.prod(t.dims)
    size = _ITEMSIZE.get(t.data_type)
    if size is None:
        raise ExportError(f"{where}: tensor {name} has data type {t.data_type}; only fixed-size numbers are read")
    check_limit("onnx_initializer_bytes", n * size, f"{where}: tensor {name} {list(t.dims)}")
    if t.HasField("raw_data"):
        held = len(t.raw_data) // size
    else:
        held = max(len(t.float_data), len(t.int32_data), len(t.int64_data), len(t.double_data), len(t.uint64_data))
        if t.data_type in (14, 15):  # complex: two values per element
            held //= 2
    if held != n:
        raise ExportError(f"{where}: tensor {name} declares {list(t.dims)} ({n:,} elements) but holds {held:,}")


def _check_props(props: dict[str, str], where: str) -> None:
    """Bounds on the facts our runtime allocates from (T, input shape, classes)."""
    import json

    try:
        if "time_steps" in props:
            check_limit("time_steps", int(props["time_steps"]), f"{where}: metadata time_steps")
        if "input_shape" in props:
            for side in json.loads(props["input_shape"])[-2:]:
                check_limit("input_side", int(side), f"{where}: metadata input_shape")
        if "nc" in props:
            check_limit("classes", int(props["nc"]), f"{where}: metadata nc")
    except (ValueError, TypeError) as e:
        raise ExportError(f"{where}: metadata is damaged ({type(e).__name__}: {e})") from None
