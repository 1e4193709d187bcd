"""Untrusted checkpoints: malicious pickles run nothing; damaged files fail clearly."""

import os
import pickle
import subprocess
import zipfile

import pytest
import torch

from emsdeploy.checkpoint import load_any, read_official
from emsdeploy.errors import CheckpointError, UnsafeCheckpointError


class _Payload:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _torch_file(obj, path):
    torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    "fn,make_args",
    [
        (os.system, lambda marker: (f"touch {marker}",)),
        (eval, lambda marker: (f"open({str(marker)!r}, 'w').close()",)),
        (exec, lambda marker: (f"open({str(marker)!r}, 'w').close()",)),
        (subprocess.Popen, lambda marker: (["touch", str(marker)],)),
    ],
    ids=["os.system", "builtins.eval", "builtins.exec", "subprocess.Popen"],
)
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, fn, make_args):
    marker = tmp_path / "pwned"
    path = _torch_file({"model": _Payload(fn, make_args(marker)), "ema": None}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load global '[\w.]+\.(system|eval|exec|Popen)'") as e:
        load_any(path)
    assert str(path) in str(e.value)
    assert not marker.exists(), "the payload ran"


def test_payload_nested_inside_a_model_state_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = _torch_file(
        {"model": {"yaml": {"nc": 1}, "x": _Payload(os.system, (f"touch {marker}",))}}, tmp_path / "evil.pt"
    )
    with pytest.raises(UnsafeCheckpointError):
        read_official(path)
    assert not marker.exists()


def test_legacy_non_zip_pickle_is_restricted_too(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pt"
    with open(path, "wb") as f:  # torch's legacy format starts with a pickled magic number
        pickle.dump(_Payload(os.system, (f"touch {marker}",)), f, protocol=2)
    with pytest.raises(CheckpointError):
        load_any(path)
    assert not marker.exists()


def test_truncated_checkpoint(official, tmp_path):
    data = official.checkpoint.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable PyTorch checkpoint"):
        load_any(cut)


@pytest.mark.parametrize("content", [b"", b"hello world", b"\x89PNG\r\n\x1a\n" + b"0" * 100])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"x\.pt"):
        load_any(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_any(tmp_path / "nope.pt")


def test_plain_state_dict_is_explained(tmp_path):
    path = _torch_file({"conv.weight": torch.zeros(1)}, tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="no 'model' or 'ema' entry"):
        load_any(path)


def test_zip_with_foreign_content(tmp_path):
    path = tmp_path / "z.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"not a pickle")
    with pytest.raises(CheckpointError, match=r"z\.pt"):
        load_any(path)


def test_newer_format_version_is_refused(tmp_path):
    from emsdeploy.checkpoint import FORMAT

    path = _torch_file(
        {"format": FORMAT, "version": 99, "config": {}, "state_dict": {}, "time_steps": 4, "encoding": "direct"},
        tmp_path / "new.pt",
    )
    with pytest.raises(CheckpointError, match="version 99 is newer"):
        load_any(path)


def test_restricted_unpickler_allows_what_checkpoints_need(tmp_path):
    from collections import OrderedDict

    from emsdeploy.checkpoint import read_torch_file

    path = _torch_file(
        {"t": torch.arange(3), "o": OrderedDict(a=1), "h": torch.ones(2, dtype=torch.half)}, tmp_path / "ok.pt"
    )
    data = read_torch_file(path)
    assert data["t"].tolist() == [0, 1, 2] and data["o"] == {"a": 1} and data["h"].dtype == torch.half
