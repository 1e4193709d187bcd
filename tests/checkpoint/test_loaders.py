"""Which reader opens each checkpoint kind, and why it cannot execute code (docs/security.md).

| kind                                  | reader                                              | why no code runs |
|---------------------------------------|-----------------------------------------------------|------------------|
| ours, torch.save zip                  | torchfile.read_torch_file -> checkpoint_from_payload | RestrictedUnpickler: allow-listed data constructors only, BUILD only on inert stand-ins |
| official EMS-YOLO pickle (FP16/FP32)  | torchfile.read_torch_file -> official_from_payload  | same; model classes are InertObject stand-ins |
| either, legacy (pre-1.6) stream       | torchfile.read_torch_file (legacy branch)           | same unpickler; storages read and size-checked by us |
| TorchScript, tar, bare pickle, other  | refused by archive.sniff / the zip layout check     | never parsed |

The tests below pin this: every kind loads with ``torch.load``, ``torch.jit.load`` and the C
unpickler made unusable, and no project source calls them.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from emsdeploy.checkpoint import load_any, read_torch_file
from emsdeploy.checkpoint.safe_unpickle import RestrictedUnpickler
from emsdeploy.errors import CheckpointError, UnsafeCheckpointError
from emsdeploy.models import DEFAULT_CHECKPOINT

from ..conftest import OFFICIAL
from . import payloads as P

REPO = Path(__file__).resolve().parents[2]


def _forbidden(*args, **kwargs):
    raise AssertionError("a checkpoint reached a code-running loader")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _kinds(tmp_path: Path, fixtures_dir: Path) -> dict[str, Path]:
    legacy = tmp_path / "legacy.pt"
    data = read_torch_file(DEFAULT_CHECKPOINT)
    data["state_dict"] = dict(data["state_dict"])
    torch.save(data, legacy, _use_new_zipfile_serialization=False)
    kinds = {"ours": DEFAULT_CHECKPOINT, "ours, legacy stream": legacy}
    for name, file in OFFICIAL.items():
        kinds[f"official {name}"] = fixtures_dir / name / file
    return kinds


def test_every_checkpoint_kind_loads_without_torch_load_or_the_c_unpickler(tmp_path, fixtures_dir, monkeypatch):
    kinds = _kinds(tmp_path, fixtures_dir)  # written with torch.save before the loaders are disabled
    monkeypatch.setattr(torch, "load", _forbidden)
    monkeypatch.setattr(torch.jit, "load", _forbidden)
    monkeypatch.setattr(torch.serialization, "load", _forbidden)
    monkeypatch.setattr(pickle, "load", _forbidden)
    monkeypatch.setattr(pickle, "loads", _forbidden)
    monkeypatch.setattr(pickle, "Unpickler", _forbidden)
    for kind, path in kinds.items():
        ckpt = load_any(path)
        assert ckpt.state_dict and all(isinstance(v, torch.Tensor) for v in ckpt.state_dict.values()), kind


def test_the_unpickler_is_the_pure_python_machine_with_our_opcodes():
    """BUILD, calls and item setting go through our checks, not pickle's."""
    assert issubclass(RestrictedUnpickler, pickle._Unpickler)
    for op in (pickle.BUILD, pickle.REDUCE, pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.SETITEMS, pickle.EXT1):
        assert RestrictedUnpickler.dispatch[op[0]] is not pickle._Unpickler.dispatch[op[0]]


@pytest.mark.parametrize(
    "make,pattern",
    [
        (lambda p: P.torchscript(p, p.with_suffix(".marker")), r"TorchScript archive"),
        (P.tar_with_fifo, r"tar-format checkpoint"),
        (lambda p: _write(p, pickle.dumps({"a": 1}, protocol=2)), r"a bare pickle, not written by torch\.save"),
        (lambda p: _write(p, b""), r"empty file"),
        (lambda p: _write(p, b"GIF89a" + bytes(600)), r"neither a zip nor a legacy torch\.save file"),
    ],
    ids=["torchscript", "tar", "bare-pickle", "empty", "other"],
)
def test_kinds_we_never_parse_are_refused_by_name(tmp_path, make, pattern):
    path = make(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=rf"x\.pt: .*{pattern}"):
        load_any(path)


def test_torchscript_refusal_is_unsafe_error(tmp_path):
    path = P.torchscript(tmp_path / "ts.pt", tmp_path / "marker")
    with pytest.raises(UnsafeCheckpointError, match="it contains code and is never loaded; export the state_dict"):
        load_any(path)


def test_no_project_source_calls_a_code_running_loader():
    """torch.load / torch.jit.load / pickle.load(s) / the C Unpickler appear nowhere in the package."""
    calls = re.compile(r"\b(torch\.load|jit\.load|pickle\.loads?|pickle\.Unpickler|_pickle)\s*\(")
    sources = [*(REPO / "emsdeploy").rglob("*.py"), *(REPO / "models").rglob("*.py")]
    found = [
        f"{p.relative_to(REPO)}:{i}"
        for p in sources
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if calls.search(line)
    ]
    assert found == [], found


def test_legacy_module_records_give_stand_in_classes_only(tmp_path):
    """Legacy streams name nn.Module classes by ('module', class, file, source) records: the class
    becomes a stand-in and the source is never compared (torch would write a .patch file)."""
    src = b"X\x07\x00\x00\x00evil.pyX\x0d\x00\x00\x00def f(): pass"
    record = b"\x80\x02(X\x06\x00\x00\x00module" + b"cmodels.yolo\nModel\n" + src + b"tQ)\x81."  # pid, NEWOBJ
    obj = read_torch_file(P.legacy_stream(tmp_path / "m.pt", record, []))
    assert obj._qualname == "models.yolo.Model" and obj.state == {}
    foreign = record.replace(b"cmodels.yolo\nModel\n", b"ctorch._utils\n_rebuild_parameter\n")
    with pytest.raises(UnsafeCheckpointError, match=r"f\.pt: refused a legacy module record"):
        read_torch_file(P.legacy_stream(tmp_path / "f.pt", foreign, []))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pt", "m.pt"]
