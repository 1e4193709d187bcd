"""Checked HDF5 reading (``.emsir`` IR files, Lava folders' ``.h5``/``.net`` files).

HDF5 can make a reader open other files (soft and external links, external storage, virtual
datasets) and declare datasets far larger than the file (unwritten or compressed). Before any
caller touches the data, :func:`open_hdf5` walks every object and refuses all of these, naming
the file and the dataset; declared sizes are bounded (:mod:`.limits`) and must be backed by the
bytes really stored. Only numeric and string datasets, and the filters our writers
use (deflate, shuffle, Fletcher-32, LZF) are accepted, so no filter plugin is ever loaded.

Our writers :func:`seal_hdf5` each file: a 512-byte HDF5 user block at its start holds the
SHA-256 of the rest. A sealed file is verified before the HDF5 library parses a byte of it, so a
cut or bit-flipped file is refused without ever reaching HDF5's (fragile) metadata parser.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import EmsdeployError, UntrustedFileError
from .limits import check_limit, limit

__all__ = ["USERBLOCK_SIZE", "check_hdf5", "open_hdf5", "seal_hdf5", "sha256_file"]

USERBLOCK_SIZE = 512  # HDF5's smallest user block; pass userblock_size=USERBLOCK_SIZE to h5py.File
_SEAL = b"EMSDEPLOY-SHA256 "  # then 64 hex digits of the SHA-256 of the bytes after the user block
# Deflate cannot compress beyond ~1032:1 (and LZF less), so compressed data that declares more
# is a lie; honest constant arrays (NIR's broadcast parameters) approach that ratio.
MAX_COMPRESSION_RATIO = 1032


def sha256_file(path: Path, offset: int = 0) -> str:
    """Hex SHA-256 of the file's bytes from ``offset`` on, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def seal_hdf5(path: str | Path) -> None:
    """Write the SHA-256 seal into the user block of a closed file made with
    ``userblock_size=USERBLOCK_SIZE``."""
    path = Path(path)
    digest = sha256_file(path, USERBLOCK_SIZE).encode()
    with open(path, "r+b") as f:
        if f.read(USERBLOCK_SIZE) != bytes(USERBLOCK_SIZE):
            raise ValueError(f"{path}: no empty {USERBLOCK_SIZE}-byte user block to seal")
        f.seek(0)
        f.write(_SEAL + digest + b"\n")


def _verify_seal(path: Path, error: type[EmsdeployError]) -> None:
    with open(path, "rb") as f:
        head = f.read(len(_SEAL) + 64)
    if not head.startswith(_SEAL):
        return  # not sealed (foreign or older file): the structural checks below still apply
    if sha256_file(path, USERBLOCK_SIZE).encode() != head[len(_SEAL) :]:
        raise error(f"{path}: checksum mismatch (the file is cut or damaged); export it again")


# h5py.h5z filter ids our writers use; anything else could load a plugin library.
_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}
_COMPRESSING = {1, 32000}


@contextlib.contextmanager
def open_hdf5(
    path: str | Path, *, error: type[EmsdeployError] = UntrustedFileError, compressed: bool = False
) -> Iterator[Any]:  # an h5py.File (h5py ships no types)
    """Open ``path`` read-only after :func:`check_hdf5`; yields the ``h5py.File``.

    ``error``: the error class raised (e.g. ``IRFormatError``); every message names the file.
    ``compressed``: accept deflate/LZF datasets (NIR files, and the large arrays of our IR and
    Lava files, which at paper sizes are mostly constant per-neuron parameters). Compression is
    the one way a small file can hold a large array, so it is bounded: every chunk must be stored
    and all compressed datasets together may declare at most MAX_COMPRESSION_RATIO × the file.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    size = path.stat().st_size
    check_limit("hdf5_file_bytes", size, f"{path}: file size")
    _verify_seal(path, error)
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # OSError for a foreign or cut file; h5py raises others on odd files
        raise error(f"{path}: not a readable HDF5 file (cut or corrupt?): {_short(e)}") from None
    with f:
        try:
            check_hdf5(f, path, size, compressed=compressed)
        except EmsdeployError as e:
            raise error(str(e)) from None
        except Exception as e:
            raise error(f"{path}: damaged HDF5 structure ({type(e).__name__}: {_short(e)})") from None
        yield f


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


def check_hdf5(f: object, path: Path, file_size: int, compressed: bool = False) -> None:
    """Walk every link, object and attribute of the open file ``f``; raise
    :class:`UntrustedFileError` for links, external storage, virtual datasets and sizes that
    exceed the bounds or the bytes the file really stores."""
    import h5py

    max_objects = limit("hdf5_objects")
    count = 0
    compressed_declared = 0
    _check_attrs(f, "/", path)
    stack: list[tuple[str, h5py.Group]] = [("", f)]
    while stack:
        prefix, group = stack.pop()
        for name in group:
            where = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                raise UntrustedFileError(f"{path}: {where} is a soft link (to {link.path}); links are refused")
            if isinstance(link, h5py.ExternalLink):
                raise UntrustedFileError(
                    f"{path}: {where} is an external link (to {link.filename}:{link.path}); links to other files are refused"
                )
            if not isinstance(link, h5py.HardLink):
                raise UntrustedFileError(f"{path}: {where} is a user-defined link; links are refused")
            count += 1
            if count > max_objects:
                check_limit("hdf5_objects", count, f"{path}: number of objects")
            oid = h5py.h5o.open(group.id, name.encode())
            info = h5py.h5o.get_info(oid)
            if info.rc != 1:  # a second hard link to one object can form a cycle
                raise UntrustedFileError(f"{path}: {where} has {info.rc} hard links; our files link each object once")
            if info.type == h5py.h5o.TYPE_GROUP:
                obj = group[name]
                _check_attrs(obj, where, path)
                stack.append((where, obj))
            elif info.type == h5py.h5o.TYPE_DATASET:
                ds = group[name]
                _check_attrs(ds, where, path)
                compressed_declared += _check_dataset(ds, where, path, file_size, compressed)
            else:
                raise UntrustedFileError(f"{path}: {where} is a named datatype; only groups and datasets are read")
    if compressed_declared > MAX_COMPRESSION_RATIO * file_size + (1 << 20):
        raise UntrustedFileError(
            f"{path}: compressed datasets declare {compressed_declared:,} bytes, more than "
            f"{MAX_COMPRESSION_RATIO}x the file's {file_size:,} bytes (a compression bomb?)"
        )


def _nbytes(shape: tuple[int, ...] | None, itemsize: int) -> int:
    return 0 if shape is None else math.prod(int(s) for s in shape) * int(itemsize)


def _check_dataset(ds: object, where: str, path: Path, file_size: int, compressed: bool) -> int:
    """Check one dataset; returns its declared bytes when it is compressed, else 0."""
    import h5py

    if ds.is_virtual:  # type: ignore[attr-defined]
        raise UntrustedFileError(f"{path}: dataset {where} is a virtual dataset (reads other files); refused")
    dcpl = ds.id.get_create_plist()  # type: ignore[attr-defined]
    if dcpl.get_external_count():
        other = dcpl.get_external(0)[0].decode(errors="replace")
        raise UntrustedFileError(
            f"{path}: dataset {where} uses external storage (in {other}); data outside the file is refused"
        )
    dtype = ds.dtype  # type: ignore[attr-defined]
    vlen_str = h5py.check_string_dtype(dtype) is not None  # NIR stores names as variable-length strings
    if (dtype.kind not in "biufS" and not vlen_str) or dtype.names is not None or dtype.subdtype is not None:
        raise UntrustedFileError(
            f"{path}: dataset {where} has dtype {dtype}; only numbers and strings are read"
        )
    nbytes = _nbytes(ds.shape, dtype.itemsize)  # type: ignore[attr-defined]
    check_limit("hdf5_dataset_bytes", nbytes, f"{path}: dataset {where} ({ds.shape}, {dtype})")  # type: ignore[attr-defined]
    filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    bad = [fid for fid in filters if fid not in _FILTERS]
    if bad:
        raise UntrustedFileError(
            f"{path}: dataset {where} uses HDF5 filter {bad[0]}; allowed: {', '.join(_FILTERS.values())}"
        )
    if dcpl.get_layout() == h5py.h5d.CHUNKED:
        chunk = _nbytes(ds.chunks, dtype.itemsize)  # type: ignore[attr-defined]
        check_limit("hdf5_chunk_bytes", chunk, f"{path}: dataset {where} chunk {ds.chunks}")  # type: ignore[attr-defined]
    elif dcpl.get_layout() not in (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT):
        raise UntrustedFileError(f"{path}: dataset {where} has an unsupported storage layout")
    stored = ds.id.get_storage_size()  # type: ignore[attr-defined]
    if stored > file_size:
        raise UntrustedFileError(f"{path}: dataset {where} claims {stored:,} stored bytes in a {file_size:,}-byte file")
    if any(fid in _COMPRESSING for fid in filters):
        if not compressed:
            raise UntrustedFileError(
                f"{path}: dataset {where} is compressed; this file kind is written uncompressed, refused"
            )
        expected = math.prod(-(-int(n) // int(c)) for n, c in zip(ds.shape, ds.chunks)) if nbytes else 0  # type: ignore[attr-defined, misc]
        if ds.id.get_num_chunks() < expected:  # type: ignore[attr-defined]
            raise UntrustedFileError(f"{path}: dataset {where} has unwritten chunks (declared but not stored); refused")
        return nbytes
    if stored < nbytes:
        raise UntrustedFileError(
            f"{path}: dataset {where} declares {ds.shape} ({nbytes:,} bytes) but stores {stored:,} bytes "  # type: ignore[attr-defined]
            "(unwritten or cut); refused"
        )
    return 0


def _check_attrs(obj: object, where: str, path: Path) -> None:
    import h5py

    for name in obj.attrs:  # type: ignore[attr-defined]
        aid = h5py.h5a.open(obj.id, name.encode())  # type: ignore[attr-defined]
        dtype = aid.dtype
        if dtype.kind in "cV" or dtype.subdtype is not None:
            raise UntrustedFileError(f"{path}: attribute {name!r} of {where} has dtype {dtype}; refused")
        nbytes = max(_nbytes(aid.shape, dtype.itemsize), aid.get_storage_size())
        check_limit("hdf5_attribute_bytes", nbytes, f"{path}: attribute {name!r} of {where}")
