"""Read a ``torch.save`` file without ``torch.load``: classify, bound, unpickle, check every record.

``torch.load`` hands a TorchScript zip to ``torch.jit.load`` whatever ``weights_only`` says,
trusts the sizes a file declares (a storage claiming more than the file holds is filled with
uninitialised memory), inflates entries whole and extracts tar members (FIFOs included). So
checkpoints never reach it. This module reads the two layouts ``torch.save`` writes today:

* **zip** (torch >= 1.6): ``<prefix>/data.pkl`` plus one stored record ``<prefix>/data/<key>``
  per storage, and small metadata records. A TorchScript archive (``code/``,
  ``constants.pkl``, ``bytecode.pkl``) or any other entry is refused before anything is read.
* **legacy** (``_use_new_zipfile_serialization=False``): pickled magic number, protocol and
  system info, the object pickle, the storage key list, then each storage as ``int64`` element
  count + raw bytes.

The object pickle goes through :class:`~.safe_unpickle.RestrictedUnpickler`; every storage's
bytes must be present and exactly as long as the pickle declares; every view must lie inside
its storage. Tar checkpoints (PyTorch < 0.4), bare pickles and anything else are refused.
"""

from __future__ import annotations

import io
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UnsafeCheckpointError
from .archive import ArchiveError, BoundedZip, file_head, sniff
from .safe_unpickle import InertObject, RestrictedUnpickler, StorageType, TensorArgsError

__all__ = ["MAX_FILE_BYTES", "MAX_PICKLE_BYTES", "read_torch_file"]

MAX_PICKLE_BYTES = 64 << 20  # the largest official fixture's data.pkl is 122 kB
MAX_FILE_BYTES = 8 << 30

_METADATA = {
    "version": 64,
    ".data/version": 64,
    "byteorder": 64,
    ".data/serialization_id": 256,
    ".format_version": 64,
    ".storage_alignment": 64,
}
_STORAGE_RECORD = re.compile(r"^data/[A-Za-z0-9_.-]{1,64}$")
_TORCHSCRIPT = re.compile(r"(^|/)(code/|constants\.pkl$|bytecode\.pkl$|constants/|attributes\.pkl$)")
_TORCHSCRIPT_MSG = (
    "TorchScript archive: it contains code and is never loaded; export the state_dict "
    "(torch.save(model.state_dict(), ...)) or convert the official checkpoint instead"
)
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def read_torch_file(path: Path) -> Any:
    """The object a ``torch.save`` file holds, read within bounds. Raises :class:`CheckpointError`."""
    if not path.is_file():
        what = "no such file" if not path.exists() else "not a regular file"
        raise CheckpointError(f"{path}: {what}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: {size:,} bytes; checkpoints larger than {MAX_FILE_BYTES >> 30} GiB are refused")
    kind = sniff(file_head(path))
    try:
        if kind == "zip":
            with open(path, "rb") as f:
                return _read_zip(f, size)
        if kind == "legacy-torch":
            return _read_legacy(path.read_bytes())
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(f"{path}: {e}") from None
    except (ArchiveError, TensorArgsError, _DamagedError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (damaged pickle: {type(e).__name__}: {e})"[:400]
        ) from None
    except (MemoryError, RecursionError, OverflowError, struct.error, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__})") from None
    raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_REFUSED[kind]})")


_REFUSED = {
    "empty": "empty file",
    "pickle": "a bare pickle, not written by torch.save; it was not unpickled",
    "tar": "tar-format checkpoint of PyTorch < 0.4, not read; re-save it with a current torch.save",
    "unknown": "neither a zip nor a legacy torch.save file",
}


class _DamagedError(ValueError):
    """A record missing, cut or of the wrong size."""


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


def _read_zip(f: io.BufferedReader, size: int) -> Any:
    zf = BoundedZip(f, size)
    names = list(zf.entries)
    if any(_TORCHSCRIPT.search(n) for n in names):
        raise UnsafeCheckpointError(_TORCHSCRIPT_MSG)
    prefixes = {n.split("/", 1)[0] for n in names}
    if len(prefixes) != 1 or any("/" not in n for n in names):
        raise ArchiveError(
            f"a zip whose entries are not all in one folder ({sorted(prefixes)[:3]}); not a torch.save archive"
        )
    prefix = prefixes.pop()
    records = {n[len(prefix) + 1 :]: n for n in names}
    if "data.pkl" not in records:
        raise ArchiveError("a zip without data.pkl; not a torch.save archive")
    for rest in records:
        if rest != "data.pkl" and rest not in _METADATA and not _STORAGE_RECORD.match(rest):
            raise ArchiveError(f"unexpected entry {rest!r}: not a torch.save checkpoint layout this reader accepts")
    for rest, limit in _METADATA.items():
        if rest in records:
            value = zf.read(records[rest], limit)
            if rest == "byteorder" and value.strip() not in (b"little", b""):
                raise ArchiveError(f"byte order {value[:16]!r}: only little-endian checkpoints are read")
    storages: dict[str, torch.Tensor] = {}

    def persistent_load(pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and _text(pid[0]) == "storage"):
            raise _DamagedError(f"persistent id {pid!r:.60} is not a storage reference")
        _, stype, key, _location, numel = pid
        key = _text(key)
        if not isinstance(stype, StorageType) or not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise _DamagedError(f"storage reference {pid!r:.80} is malformed")
        if key not in storages:
            name = f"data/{key}"
            if name not in records:
                raise _DamagedError(f"storage record {name!r} is missing")
            nbytes = numel * torch.empty(0, dtype=stype.dtype).element_size()
            info = zf.entries[records[name]]
            if info.file_size != nbytes:
                raise _DamagedError(f"storage {key!r} declares {nbytes:,} bytes, its record holds {info.file_size:,}")
            storages[key] = _storage(zf.read(records[name], nbytes), stype.dtype)
        storage = storages[key]
        if storage.dtype != stype.dtype:
            raise _DamagedError(f"storage {key!r} is referenced with two dtypes")
        return storage

    pkl = zf.read(records["data.pkl"], MAX_PICKLE_BYTES)
    obj = _unpickle(io.BytesIO(pkl), persistent_load, "data.pkl")
    unused = {r[5:] for r in records if r.startswith("data/")} - set(storages)
    if unused:
        raise _DamagedError(f"{len(unused)} storage record(s) no tensor refers to (e.g. data/{sorted(unused)[0]})")
    return obj


def _storage(raw: bytes | bytearray | memoryview, dtype: torch.dtype) -> torch.Tensor:
    buf = bytearray(raw)
    if not buf:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(buf, dtype=dtype)


def _unpickle(stream: io.BytesIO, persistent_load: Any, what: str) -> Any:
    try:
        obj = RestrictedUnpickler(stream, persistent_load).load()
    except EOFError:
        raise _DamagedError(f"{what} ends early (truncated)") from None
    return obj


def _read_legacy(data: bytes) -> Any:
    stream = io.BytesIO(data)
    if _unpickle(stream, None, "magic number") != _LEGACY_MAGIC:
        raise _DamagedError("bad magic number")
    if _unpickle(stream, None, "protocol version") != _LEGACY_PROTOCOL:
        raise _DamagedError("unsupported legacy protocol version")
    info = _unpickle(stream, None, "system info")
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise _DamagedError("only little-endian legacy checkpoints are read")
    budget = [len(data)]  # storages together may not claim more bytes than the file holds
    declared: dict[str, torch.Tensor] = {}

    def persistent_load(pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 4 and _text(pid[0]) == "module":
            # ('module', class, source file, source): torch would diff the source and may write a
            # patch file; we only accept the class, which find_class already made a stand-in.
            if isinstance(pid[1], type) and issubclass(pid[1], InertObject):
                return pid[1]
            raise UnsafeCheckpointError(f"refused a legacy module record for {pid[1]!r:.60}: not a model class")
        if not (isinstance(pid, tuple) and len(pid) == 6 and _text(pid[0]) == "storage"):
            raise _DamagedError(f"persistent id {pid!r:.60} is not a storage reference")
        _, stype, key, _location, numel, view = pid
        key = _text(key)
        if not isinstance(stype, StorageType) or not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise _DamagedError(f"storage reference {pid!r:.80} is malformed")
        if view is not None:
            raise _DamagedError("storage views (PyTorch < 1.0) are not read")
        if key not in declared:
            nbytes = numel * torch.empty(0, dtype=stype.dtype).element_size()
            budget[0] -= nbytes
            if budget[0] < 0:
                raise _DamagedError(f"storage {key!r} declares {nbytes:,} bytes, more than the file holds")
            declared[key] = torch.zeros(numel, dtype=stype.dtype)
        if declared[key].dtype != stype.dtype:
            raise _DamagedError(f"storage {key!r} is referenced with two dtypes")
        return declared[key]

    obj = _unpickle(stream, persistent_load, "object pickle")
    keys = _unpickle(stream, None, "storage key list")
    if not isinstance(keys, list) or len(keys) != len(declared) or set(map(_text, keys)) != set(declared):
        raise _DamagedError("the storage key list does not match the storages the pickle refers to")
    view = memoryview(data)
    for key in map(_text, keys):
        target = declared[key]
        head = stream.read(8)
        if len(head) < 8:
            raise _DamagedError(f"storage {key!r} is missing (truncated)")
        (numel,) = struct.unpack("<q", head)
        if numel != target.numel():
            raise _DamagedError(f"storage {key!r} holds {numel} elements, the pickle declares {target.numel()}")
        nbytes = numel * target.element_size()
        start = stream.tell()
        if start + nbytes > len(data):
            raise _DamagedError(f"storage {key!r} is cut short (truncated)")
        if nbytes:
            target.copy_(_storage(view[start : start + nbytes], target.dtype))
        stream.seek(start + nbytes)
    if stream.tell() != len(data):
        raise _DamagedError(f"{len(data) - stream.tell()} unexpected bytes after the last storage")
    return obj
