"""Hostile and damaged checkpoint files, built from scratch for the safety tests.

Each builder writes one file and returns its path. Nothing here is shipped: the files are
made in a temporary folder by the tests that use them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import pickle
import struct
import sys
import tarfile
import types
import zipfile
import zlib
from pathlib import Path
from typing import Any, Tuple  # noqa: UP035 - TorchScript needs typing.Tuple

import torch

MAGIC = 0x1950A86A20F9469CFC6C
MARKER_BYTES = b"0000"


# -- TorchScript: the issue-11 payload (a __setstate__ that writes through torch.from_file) -------
class FromFileWriter(torch.nn.Module):
    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:  # noqa: UP006
        return (self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:  # noqa: UP006
        self.marker = state[0]
        t = torch.from_file(state[0], True, 4, dtype=torch.uint8)
        self.training = bool(t.fill_(65).sum() > 0) and state[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class OpsWriter(FromFileWriter):
    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:  # noqa: UP006
        self.marker = state[0]
        t = torch.ops.aten.from_file(state[0], True, 4, dtype=torch.uint8)
        self.training = bool(t.fill_(66).sum() > 0) and state[1]


def torchscript(path: Path, marker: Path, via_ops: bool = False) -> Path:
    """A ``torch.jit.save`` archive whose ``__setstate__`` overwrites ``marker`` when loaded."""
    cls = OpsWriter if via_ops else FromFileWriter
    torch.jit.save(torch.jit.script(cls(str(marker))), str(path))
    return path


# -- a torch.save zip writer we control (sizes, records, pickle bytes) ------------------------------
# Python 3.12's C pickler stops at a fixed C recursion depth (about 1,000 levels) that the deep
# payloads below pass; its pure-Python pickler recurses in Python frames, which 3.12 keeps off the
# C stack, so it goes as deep as the recursion limit ``torch_zip`` raises.
_Pickler: Any = pickle._Pickler if sys.version_info[:2] == (3, 12) else pickle.Pickler  # type: ignore[attr-defined]


class _Saver(_Pickler):
    def __init__(self, f: io.BytesIO, numel: Any) -> None:
        super().__init__(f, protocol=2)
        self.records: dict[str, bytes] = {}
        self._keys: dict[int, str] = {}
        self._numel = numel

    def persistent_id(self, obj: Any) -> Any:
        if not isinstance(obj, torch.storage.TypedStorage):
            return None
        key = self._keys.setdefault(obj._cdata, str(len(self._keys)))
        t = torch.empty(0, dtype=obj.dtype).set_(obj)
        self.records[key] = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        numel = self._numel(key, obj._size()) if self._numel else obj._size()
        return ("storage", getattr(torch, obj._pickle_storage_type()), key, "cpu", numel)


def torch_zip(path: Path, obj: Any, numel: Any = None, pkl: bytes | None = None, cut: dict | None = None) -> Path:
    """Write ``obj`` as torch.save's zip layout. ``numel(key, n)`` may change a declared size,
    ``pkl`` replaces the pickle, ``cut`` maps record key -> bytes to drop from its end."""
    buf = io.BytesIO()
    saver = _Saver(buf, numel)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        saver.dump(obj)
    finally:
        sys.setrecursionlimit(limit)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl if pkl is not None else buf.getvalue())
        z.writestr("archive/byteorder", b"little")
        for key, data in saver.records.items():
            z.writestr(f"archive/data/{key}", data[: len(data) - (cut or {}).get(key, 0)])
        z.writestr("archive/version", b"3\n")
    return path


def rezip(src: Path, dst: Path, change: Any) -> Path:
    """Copy a zip checkpoint entry by entry; ``change(name, data)`` returns new bytes or None to drop."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def raw_zip(path: Path, entries: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip written byte by byte: (name, payload, method, crc, declared uncompressed size)."""
    out, central = bytearray(), bytearray()
    for name, payload, method, crc, size in entries:
        n = name.encode()
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(payload), size, len(n), 0)
        out += n + payload
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            0,
            method,
            0,
            0,
            crc,
            len(payload),
            size,
            len(n),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += n
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))
    return path


@functools.lru_cache(maxsize=2)
def _zeros_deflated(inflated: int) -> tuple[bytes, int]:
    chunk = bytes(16 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)  # self-contained: repeatable
    crc = 0
    for _ in range(inflated // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    return block * (inflated // len(chunk)) + comp.flush(), crc


def deflate_bomb(path: Path, inflated: int = 1 << 30, honest: bool = True) -> Path:
    """``data.pkl`` deflated from ``inflated`` zero bytes (about 1 MB on disk).

    ``honest``: the directory declares the true size; otherwise it declares 100 bytes and the
    stream inflates far past that.
    """
    stream, crc = _zeros_deflated(inflated)
    parts = [stream]
    size = inflated if honest else 100
    return raw_zip(path, [("archive/data.pkl", b"".join(parts), zipfile.ZIP_DEFLATED, crc, size)])


# -- legacy (pre-1.6) torch.save streams ---------------------------------------------------------
def legacy_stream(path: Path, main_pickle: bytes, keys: list[str], storages: bytes = b"") -> Path:
    head = pickle.dumps(MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
    head += pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, protocol=2)
    path.write_bytes(head + main_pickle + pickle.dumps(keys, protocol=2) + storages)
    return path


def build_on_global(module: str, name: str, attr: str = "dump_patches") -> bytes:
    """GLOBAL module.name, then BUILD {attr: True} on it (pickle protocol 2)."""
    a = attr.encode()
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"}X" + struct.pack("<I", len(a)) + a + b"\x88sb."


def legacy_patch_writer(path: Path) -> Path:
    """The issue-12 payload: BUILD sets ``dump_patches`` on the allowed ``_codecs.encode``, then a
    legacy ``('module', <it>, file, source)`` record makes torch.load write ``<name>.patch``."""
    fname, src = b"evil.py", b"def f(): pass\n"
    body = build_on_global("_codecs", "encode")[:-1] + b"0"  # drop STOP, POP the function
    body += b"(X\x06\x00\x00\x00module" + b"c_codecs\nencode\n"
    body += b"X" + struct.pack("<I", len(fname)) + fname + b"X" + struct.pack("<I", len(src)) + src
    body += b"tQ."  # TUPLE, BINPERSID, STOP
    return legacy_stream(path, body, [])


def legacy_huge_storage(path: Path) -> Path:
    """A legacy stream whose one float storage claims 2**40 elements (4 TiB); 16 bytes follow."""
    pkl = _legacy_pickle(torch.zeros(4), lambda n: 1 << 40)
    return legacy_stream(path, pkl, ["0"], struct.pack("<q", 4) + bytes(16))


def _legacy_pickle(obj: Any, numel: Any) -> bytes:
    class Saver(pickle.Pickler):
        def persistent_id(self, o: Any) -> Any:
            if isinstance(o, torch.storage.TypedStorage):
                return ("storage", getattr(torch, o._pickle_storage_type()), "0", "cpu", numel(o._size()), None)
            return None

    buf = io.BytesIO()
    Saver(buf, protocol=2).dump(obj)
    return buf.getvalue()


# -- tar (PyTorch < 0.4) -------------------------------------------------------------------------
def tar_with_fifo(path: Path) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("storages")
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
    return path


def tar_with_huge_storage(path: Path) -> Path:
    """``storages`` says one float storage of 2**40 elements follows."""
    data = pickle.dumps(1, protocol=2) + pickle.dumps(("0", "cpu", torch.FloatStorage), protocol=2)
    data += struct.pack("<q", 1 << 40)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("storages")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


# -- official-looking pickles (classes named models.yolo.Model etc., made here) -------------------
@contextlib.contextmanager
def official_classes():
    """Fake ``models.yolo`` / ``models.common`` modules so pickle writes official class names."""
    names = ("models", "models.yolo", "models.common")
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    mods["models"].yolo, mods["models"].common = mods["models.yolo"], mods["models.common"]  # type: ignore[attr-defined]
    for mod, cls in (("models.yolo", "Model"), ("models.common", "Conv_1")):
        setattr(mods[mod], cls, type(cls, (), {"__module__": mod}))
    sys.modules.update(mods)
    try:
        yield mods["models.yolo"].Model, mods["models.common"].Conv_1  # type: ignore[attr-defined]
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def official_like(path: Path, yaml: Any, modules: Any = None, deep_chain: int = 0, cycle: bool = False) -> Path:
    """``{'model': None, 'ema': Model}`` with the given ``yaml``; optionally a module chain
    ``deep_chain`` levels deep, or a module that contains itself."""
    with official_classes() as (model_cls, conv_cls):
        model = model_cls()
        model.__dict__.update({"yaml": yaml, "_parameters": {}, "_buffers": {}, "_modules": modules or {}})
        if deep_chain:
            node = model
            for _ in range(deep_chain):
                child = conv_cls()
                child.__dict__.update({"_parameters": {"w": torch.zeros(1)}, "_buffers": {}, "_modules": {}})
                node.__dict__["_modules"] = {"m": child}
                node = child
        if cycle:
            model.__dict__["_modules"] = {"model": model}
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))
        try:
            return torch_zip(path, {"model": None, "ema": model, "epoch": 1})
        finally:
            sys.setrecursionlimit(limit)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def self_referencing() -> list:
    loop: list = []
    loop.append(loop)
    return loop


# -- SpikeYOLO-looking pickles (ultralytics class names, made here) --------------------------------
SPIKEYOLO_YAML = {
    "nc": 1,
    "scales": {"n": [0.33, 0.25, 1024]},
    "scale": "n",
    "backbone": [[-1, 1, "MS_GetT", [3, 1]]],
    "head": [[-1, 1, "SpikeDetect", ["nc"]]],
}


@contextlib.contextmanager
def _fake_classes(spec: dict[str, tuple[str, ...]]):
    """Fake modules (``{module: class names}``, parents created) so pickle writes those names."""
    names = sorted({".".join(m.split(".")[: i + 1]) for m in spec for i in range(m.count(".") + 1)})
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    for n in names:
        if "." in n:
            parent, _, leaf = n.rpartition(".")
            setattr(mods[parent], leaf, mods[n])
    for mod, classes in spec.items():
        for cls in classes:
            setattr(mods[mod], cls, type(cls, (), {"__module__": mod}))
    sys.modules.update(mods)
    try:
        yield mods
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def spikeyolo_like(
    path: Path,
    yaml: Any = None,
    time_steps: Any = 1,
    eps: tuple[float, ...] = (1e-3, 1e-3),
    model_class: tuple[str, str] = ("ultralytics.nn.tasks", "DetectionModel"),
) -> Path:
    """``{'model': DetectionModel, 'ema': None}``: layer 0 an ``MS_GetT`` with ``T``, then one
    real BatchNorm2d per ``eps``; ``model_class`` may name a look-alike class instead."""
    spik = "ultralytics.nn.modules.yolo_spikformer"
    with _fake_classes({model_class[0]: (model_class[1],), spik: ("MS_GetT",)}) as mods:
        model = getattr(mods[model_class[0]], model_class[1])()
        get_t = mods[spik].MS_GetT()
        get_t.__dict__.update({"_parameters": {}, "_buffers": {}, "_modules": {}, "T": time_steps})
        layers = {"0": get_t, **{str(i + 1): torch.nn.BatchNorm2d(2, eps=e) for i, e in enumerate(eps)}}
        seq = torch.nn.Sequential()
        seq._modules.update(layers)
        model.__dict__.update(
            {
                "yaml": SPIKEYOLO_YAML if yaml is None else yaml,
                "stride": torch.tensor([8.0]),
                "_parameters": {},
                "_buffers": {},
                "_modules": {"model": seq},
            }
        )
        return torch_zip(path, {"model": model, "ema": None, "epoch": -1})
