"""The restricted unpickler's allow-list, pinned, and refusal of everything else.

`test_safety.py` tries four named payloads; these tests make widening the allow-list visible
(an addition fails here until it is reviewed and listed) and sweep every callable of the
modules an attacker reaches for, through the public loader, in both torch file formats
(zip / ``torch.save``, and the legacy pickle stream) and every pickle protocol.
"""

from __future__ import annotations

import builtins
import codecs
import functools
import importlib
import io
import operator
import os
import pickle
import re
import runpy
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from emsdeploy.checkpoint import load_any, read_official, safe_unpickle
from emsdeploy.checkpoint.torchfile import read_torch_file
from emsdeploy.errors import CheckpointError, UnsafeCheckpointError

# ---- the allow-list, written out: any change to it must be reviewed and listed here ----------

PINNED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("__builtin__", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "frozenset"),
    ("_codecs", "encode"),  # a latin-1-only wrapper, not codecs.encode
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    *(
        ("torch", dt)
        for dt in ("float16", "float32", "float64", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
    ),
}
# classes under these module prefixes become inert stand-ins (their code never runs)
PINNED_PREFIXES = ("models.yolo", "models.common", "models.experimental", "torch.nn.modules.")
# exactly these ultralytics classes (official SpikeYOLO checkpoints) become inert stand-ins
PINNED_CLASSES = {
    ("ultralytics.nn.tasks", "DetectionModel"),
    ("ultralytics.nn.modules.conv", "Concat"),
    ("ultralytics.utils", "IterableSimpleNamespace"),
    *(
        ("ultralytics.nn.modules.yolo_spikformer", n)
        for n in (
            "MS_GetT",
            "MS_DownSampling",
            "MS_AllConvBlock",
            "MS_ConvBlock",
            "SepConv",
            "SepRepConv",
            "RepConv",
            "BNAndPadLayer",
            "MS_StandardConv",
            "SpikeSPPF",
            "SpikeConv",
            "SpikeConvWithoutBN",
            "SpikeDetect",
            "SpikeDFL",
            "mem_update",
            "MultiSpike4",
        )
    ),
}


def test_allow_list_is_exactly_the_reviewed_one():
    allowed = set(safe_unpickle._ALLOWED)
    assert allowed - PINNED_GLOBALS == set(), "new globals allowed: review them, then add them to PINNED_GLOBALS"
    assert PINNED_GLOBALS - allowed == set(), "globals no longer allowed: update PINNED_GLOBALS"
    assert tuple(safe_unpickle.ALLOWED_PREFIXES) == PINNED_PREFIXES
    assert set(safe_unpickle.ALLOWED_CLASSES) == PINNED_CLASSES, "review ultralytics class changes here"


def test_spikeyolo_classes_become_inert_and_nothing_is_imported():
    sys.modules.pop("ultralytics", None)
    u = safe_unpickle.RestrictedUnpickler(io.BytesIO(b""))
    for module, name in PINNED_CLASSES:
        standin = u.find_class(module, name)
        assert issubclass(standin, safe_unpickle.InertObject) and standin._qualname == f"{module}.{name}"
    assert not any(m == "ultralytics" or m.startswith("ultralytics.") for m in sys.modules)


ULTRALYTICS_LOOKALIKES = [
    ("ultralytics.nn.tasks", "attempt_load_one_weight"),  # a function of an allowed module
    ("ultralytics.nn.tasks", "torch_safe_load"),
    ("ultralytics.nn.tasks", "SegmentationModel"),  # a class not on the list
    ("ultralytics.nn.modules.yolo_spikformer", "MultiSpike8"),
    ("ultralytics.nn.modules.yolo_spikformer", "torch"),
    ("ultralytics.nn.modules.yolo_spikformer.os", "system"),  # an allowed module as a prefix
    ("ultralytics.nn.modules.conv", "Conv"),
    ("ultralytics.utils", "LOGGER"),
    ("ultralytics", "DetectionModel"),  # the right name in the wrong module
    ("ultralytics.nn.tasks.DetectionModel", "__init__"),
]


@pytest.mark.parametrize(("module", "name"), ULTRALYTICS_LOOKALIKES)
def test_ultralytics_lookalikes_are_refused(module, name, tmp_path):
    path = _zip_file(_reduce_pickle(module, name, 2), tmp_path / "x.pt")
    with pytest.raises(UnsafeCheckpointError, match=_refused(module, name)) as e:
        load_any(path)
    assert str(path) in str(e.value)


def test_allowed_globals_resolve_to_the_harmless_objects():
    """Allowed names resolve to our checked constructors, never to the real callables."""
    u = safe_unpickle.RestrictedUnpickler(io.BytesIO(b""))
    make_set = u.find_class("builtins", "set")
    assert make_set is not set and make_set(["a"]) == {"a"}
    with pytest.raises((UnsafeCheckpointError, safe_unpickle.TensorArgsError)):
        make_set(iter("x"), 1)  # one list or tuple argument only
    assert u.find_class("collections", "OrderedDict").__name__ == "OrderedDict"
    enc = u.find_class("_codecs", "encode")
    assert enc is not codecs.encode and enc("ÿ", "latin1") == b"\xff"
    with pytest.raises(UnsafeCheckpointError, match="encoding"):
        enc("x", "rot13")
    assert u.find_class("torch", "float16") is torch.float16
    make_size = u.find_class("torch", "Size")
    assert make_size is not torch.Size and make_size((2, 3)) == torch.Size((2, 3))
    standin = u.find_class("torch.nn.modules.conv", "Conv2d")
    assert issubclass(standin, safe_unpickle.InertObject) and standin is not torch.nn.Conv2d
    assert issubclass(u.find_class("models.yolo", "Model"), safe_unpickle.InertObject)


# ---- the sweep: every callable of the dangerous modules is refused ---------------------------

SWEPT = (builtins, os, subprocess, sys, importlib, shutil, socket, io, codecs, functools, operator, pickle, runpy)


def _callables() -> list[tuple[str, str]]:
    out = []
    for mod in (*SWEPT, torch, np):
        for name in sorted(dir(mod)):
            if callable(getattr(mod, name, None)) and (mod.__name__, name) not in PINNED_GLOBALS:
                out.append((mod.__name__, name))
    # what pickle itself writes for some of them, and names that import nothing
    out += [("posix", "system"), ("nt", "system"), ("__builtin__", "eval"), ("__builtin__", "getattr")]
    out += [("torch._utils", "_rebuild_from_type_v2"), ("torch.serialization", "load"), ("foo", "bar")]
    out += [("models.yolo", "os.system"), ("torch.nn.modules", "__import__")]  # dotted / dunder names
    return out


CALLABLES = _callables()


def _reduce_pickle(module: str, name: str, protocol: int) -> bytes:
    """``{"model": module.name("x")}`` at ``protocol``: GLOBAL up to 3, STACK_GLOBAL from 4."""
    head = b"" if protocol < 2 else pickle.PROTO + bytes([protocol])
    if protocol >= 4:
        glob = b"".join(pickle.SHORT_BINUNICODE + bytes([len(s)]) + s for s in (module.encode(), name.encode()))
        glob += pickle.STACK_GLOBAL
    else:
        glob = pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n"
    arg = pickle.UNICODE + b"x\n" + pickle.TUPLE1 if protocol >= 2 else pickle.MARK + pickle.UNICODE + b"x\n" + pickle.TUPLE
    return head + pickle.EMPTY_DICT + pickle.UNICODE + b"model\n" + glob + arg + pickle.REDUCE + pickle.SETITEM + pickle.STOP


def _zip_file(payload: bytes, path: Path) -> Path:
    """A genuine torch.save zip whose data.pkl is the payload."""
    buf = io.BytesIO()
    torch.save({"model": None}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, payload if info.filename.endswith("/data.pkl") else src.read(info))
    return path


def _legacy_file(payload: bytes, path: Path) -> Path:
    """torch's legacy stream: magic number, protocol, sys info, then the payload where the object goes."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    with open(path, "wb") as f:
        for header in (MAGIC_NUMBER, PROTOCOL_VERSION, {"protocol_version": PROTOCOL_VERSION, "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(payload)
        pickle.dump([], f, protocol=2)  # storage keys
    return path


def _refused(module: str, name: str) -> str:
    """The refusal expected for ``module.name``: not on the allow-list, or (torch's own storage
    types, which resolve only to describe a tensor's storage) refused when called."""
    if module == "torch" and name.endswith("Storage"):
        return rf"refused (a call on StorageType|to load global 'torch\.{name}')"
    return rf"refused to load global '{re.escape(module)}\.{re.escape(name)}'"


def test_the_sweep_is_broad():
    assert len(CALLABLES) > 1500
    by_module = {m for m, _ in CALLABLES}
    assert {"builtins", "os", "subprocess", "torch", "numpy", "foo"} <= by_module
    assert {("builtins", "getattr"), ("subprocess", "run"), ("builtins", "eval"), ("os", "system")} <= set(CALLABLES)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_dangerous_callable_is_refused_by_the_unpickler(protocol):
    """Every callable, every protocol, straight through the restricted unpickler every loader uses."""
    for module, name in CALLABLES:
        payload = _reduce_pickle(module, name, protocol)
        with pytest.raises(UnsafeCheckpointError, match=_refused(module, name)):
            safe_unpickle.RestrictedUnpickler(io.BytesIO(payload)).load()


def test_every_dangerous_callable_is_refused_from_a_file(tmp_path):
    """Through the public loader: each callable once, cycling over both formats and every protocol."""
    protocols = pickle.HIGHEST_PROTOCOL + 1
    seen = set()
    # no torch.load: every name, '*Storage*' ones included, reaches our allow-list
    for i, (module, name) in enumerate(CALLABLES):
        protocol, fmt = i % protocols, (i // protocols) % 2
        payload = _reduce_pickle(module, name, protocol)
        path = (_zip_file if fmt == 0 else _legacy_file)(payload, tmp_path / f"{i}.pt")
        with pytest.raises(UnsafeCheckpointError, match=_refused(module, name)) as e:
            (load_any if i % 3 else read_official)(path)
        assert str(path) in str(e.value)
        seen.add((protocol, fmt))
        path.unlink()
    assert len(seen) == 2 * protocols


def test_storage_names_outside_torch_are_refused(tmp_path):
    """torch.load matched any '*Storage' name in any module; our reader allows torch's own only."""
    payload = _reduce_pickle("os", "FloatStorage", 2)
    for make in (_zip_file, _legacy_file):
        with pytest.raises(UnsafeCheckpointError, match=r"refused to load global 'os\.FloatStorage'"):
            load_any(make(payload, tmp_path / f"s_{make.__name__}.pt"))


def test_the_payload_format_loads_when_the_global_is_allowed(tmp_path):
    """The sweep's files are well formed: with an allowed global in the same place, they load."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        payload = _reduce_pickle("_codecs", "encode", protocol)  # an allowed global that takes one str
        assert pickle.loads(payload) == {"model": b"x"}
        for make in (_zip_file, _legacy_file):
            path = make(payload, tmp_path / f"ok{protocol}.pt")
            assert read_torch_file(path) == {"model": b"x"}
            with pytest.raises(CheckpointError, match="not a pickled models.yolo.Model"):
                read_official(path)  # past the unpickler: the loader's own checks take over


def test_nothing_named_is_imported(tmp_path):
    """Refusal happens before resolution: a module that is not loaded yet stays unloaded."""
    module = "xml.dom.pulldom"  # stdlib, never imported by emsdeploy or its tests
    sys.modules.pop(module, None)
    path = _zip_file(_reduce_pickle(module, "parse", 2), tmp_path / "x.pt")
    with pytest.raises(UnsafeCheckpointError):
        load_any(path)
    assert module not in sys.modules
