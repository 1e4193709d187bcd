"""Checked ``.npy`` reading (model inputs, Gen1 label files).

The header is parsed first, without pickles: dtype and shape are checked against the bounds and
against the bytes the file really holds before anything is allocated; then the array is read
with ``allow_pickle=False`` and float data must be finite (NaN or Inf inputs would flow into
spikes silently).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import EmsdeployError, InputError
from .limits import check_limit

__all__ = ["load_npy", "npy_header"]


def npy_header(path: str | Path, *, error: type[EmsdeployError] = InputError) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data_offset)`` of a ``.npy`` file, checked: no object dtype, and the file
    holds exactly the bytes the header declares."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unknown .npy version {version}")
            offset = f.tell()
    except (ValueError, OSError, SyntaxError, TypeError) as e:
        raise error(f"{path}: not a readable .npy array ({' '.join(str(e).split())[:160]})") from None
    if dtype.hasobject:
        raise error(f"{path}: dtype {dtype} holds Python objects (pickles); refused")
    nbytes = math.prod(shape) * dtype.itemsize
    check_limit("npy_bytes", nbytes, f"{path}: array {tuple(shape)} of {dtype}")
    if size - offset != nbytes:
        raise error(
            f"{path}: header declares {tuple(shape)} of {dtype} ({nbytes:,} bytes) but the file holds "
            f"{size - offset:,} data bytes (cut or padded)"
        )
    return tuple(int(s) for s in shape), dtype, offset


def load_npy(
    path: str | Path,
    *,
    error: type[EmsdeployError] = InputError,
    kinds: str = "biuf",
    allow_empty: bool = False,
    structured: bool = False,
    max_records: str | None = None,
) -> np.ndarray:
    """Read a ``.npy`` after :func:`npy_header`.

    Args:
        kinds: numpy dtype kinds accepted (``b`` bool, ``i``/``u`` integers, ``f`` floats);
            complex is never accepted unless named here.
        allow_empty: accept an array with no elements.
        structured: accept a structured dtype (each field's kind must be in ``kinds``).
        max_records: name of the limit that bounds ``shape[0]`` (e.g. ``"label_records"``).
    Floats (and float fields) must be finite.
    """
    path = Path(path)
    shape, dtype, _ = npy_header(path, error=error)
    fields = [dtype.fields[n][0] for n in dtype.names] if dtype.names and dtype.fields else [dtype]
    if dtype.names and not structured:
        raise error(f"{path}: structured dtype {dtype}; expected a plain numeric array")
    for ft in fields:
        if ft.kind not in kinds or ft.subdtype is not None:
            raise error(f"{path}: dtype {dtype} unsupported; allowed kinds: {_kinds(kinds)}")
    if max_records is not None and shape:
        check_limit(max_records, shape[0], f"{path}: number of records")
    if not allow_empty and math.prod(shape) == 0:
        raise error(f"{path}: empty array {tuple(shape)}; at least one element is needed")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise error(f"{path}: not a readable .npy array ({' '.join(str(e).split())[:160]})") from None
    for name in dtype.names or (None,):
        values = arr if name is None else arr[name]
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = np.flatnonzero(~np.isfinite(values.reshape(-1)))[0]
            where = f"field {name!r} " if name else ""
            raise error(f"{path}: {where}element {bad} is {values.reshape(-1)[bad]}; values must be finite")
    return arr


def _kinds(kinds: str) -> str:
    names = {"b": "bool", "i": "int", "u": "uint", "f": "float", "c": "complex"}
    return ", ".join(names.get(k, k) for k in kinds)
