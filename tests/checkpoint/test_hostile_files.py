"""Hostile and damaged checkpoints through every reading command (issues 11 and 12).

Each payload is built here. One child process runs the real CLI entry point
(``emsdeploy.cli.main.main``, what the ``emsdeploy`` script calls) for convert, inspect,
trace, export, energy and verify, plus ``load_any``, on every payload: imports are paid once
and the child's peak RSS bounds every case at once. Every run must exit 2 with a one-line
message naming the file and what is wrong; no output is written; the marker files never
change.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from emsdeploy.checkpoint import load_any
from emsdeploy.errors import CheckpointError, UnsafeCheckpointError
from emsdeploy.models import DEFAULT_CHECKPOINT

from . import payloads as P

RSS_BOUND_MB = 800
COMMANDS = ("load_any", "convert", "inspect", "trace", "export", "energy", "verify")
_GOOD_YAML = {
    "nc": 1,
    "anchors": [[1, 2, 3, 4]],
    "backbone": [[-1, 1, "Conv_1", [8, 3, 2]]],
    "head": [[-1, 1, "Detect", ["nc", "anchors"]]],
}


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _flip_weight_byte(name: str, data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01]) if name.endswith("/data/3") else data


# name -> (builder(path, marker, tmp), what the one-line message must say)
CASES = {
    "torchscript_from_file": (
        lambda p, m, d: P.torchscript(p, m),
        r"TorchScript archive: it contains code and is never loaded",
    ),
    "torchscript_ops": (lambda p, m, d: P.torchscript(p, m, via_ops=True), r"TorchScript archive: it contains code"),
    "legacy_build_patch": (lambda p, m, d: P.legacy_patch_writer(p), r"refused to set state on function"),
    "zip_build_function": (
        lambda p, m, d: P.torch_zip(p, None, pkl=P.build_on_global("torch._utils", "_rebuild_tensor_v2")),
        r"refused to set state on function",
    ),
    "os_system_global": (
        lambda p, m, d: P.torch_zip(p, {"model": _Reduce(os.system, (f"touch {d / 'pwned'}",))}),
        r"refused to load global '\w+\.system'",
    ),
    "deflate_bomb": (lambda p, m, d: P.deflate_bomb(p), r"declares 1,073,741,824 bytes; at most"),
    "deflate_bomb_lying_size": (lambda p, m, d: P.deflate_bomb(p, honest=False), r"data\.pkl' is damaged \(Bad CRC-32"),
    "zip_storage_claims_4tib": (
        lambda p, m, d: P.torch_zip(p, {"w": torch.zeros(4)}, numel=lambda k, n: 1 << 40),
        r"storage '0' declares 4,398,046,511,104 bytes, its record holds 16",
    ),
    "legacy_storage_claims_4tib": (lambda p, m, d: P.legacy_huge_storage(p), r"more than the file holds"),
    "zip_entry_claims_4gib": (
        lambda p, m, d: P.raw_zip(p, [("archive/data.pkl", b"\x80\x02N.", 0, 0, (1 << 32) - 1)]),
        r"stored entry with two different sizes",
    ),
    "tar_fifo_member": (lambda p, m, d: P.tar_with_fifo(p), r"tar-format checkpoint of PyTorch < 0.4, not read"),
    "tar_huge_storage": (lambda p, m, d: P.tar_with_huge_storage(p), r"tar-format checkpoint"),
    "deep_yaml": (
        lambda p, m, d: P.official_like(p, {**_GOOD_YAML, "extra": P.nested(3000)}),  # 3x the default recursion limit (5000 overflows 3.13 pickle's C stack while building)
        r"ckpt\['ema'\]\.yaml\['extra'\]\S* is nested more than 32 levels",
    ),
    "yaml_refers_to_itself": (
        lambda p, m, d: P.official_like(p, {**_GOOD_YAML, "extra": P.self_referencing()}),
        r"ckpt\['ema'\]\.yaml\['extra'\]\S* is nested more than 32 levels deep \(or refers to itself\)",
    ),
    "module_cycle": (lambda p, m, d: P.official_like(p, _GOOD_YAML, cycle=True), r"module model contains itself"),
    "module_chain_300_deep": (
        lambda p, m, d: P.official_like(p, _GOOD_YAML, deep_chain=300),
        r"module tree deeper than 64 levels",
    ),
    "nc_is_a_dict": (
        lambda p, m, d: P.official_like(p, {**_GOOD_YAML, "nc": {"a": 1}}),
        r"ckpt\['ema'\]\.yaml\['nc'\] must be an integer",
    ),
    "spikeyolo_lookalike_class": (
        lambda p, m, d: P.spikeyolo_like(p, model_class=("ultralytics.nn.tasks", "SegmentationModel")),
        r"refused to load global 'ultralytics\.nn\.tasks\.SegmentationModel'",
    ),
    "spikeyolo_lookalike_module": (
        lambda p, m, d: P.spikeyolo_like(p, model_class=("ultralytics.nn.tasks.os", "DetectionModel")),
        r"refused to load global 'ultralytics\.nn\.tasks\.os\.DetectionModel'",
    ),
    "spikeyolo_other_ultralytics_model": (
        lambda p, m, d: P.spikeyolo_like(p, yaml={**P.SPIKEYOLO_YAML, "head": [[-1, 1, "Detect", ["nc"]]]}),
        r"ckpt\['model'\]\.yaml is not a SpikeYOLO config \(its last row is not SpikeDetect\)",
    ),
    "spikeyolo_two_bn_eps": (
        lambda p, m, d: P.spikeyolo_like(p, eps=(1e-3, 1e-5)),
        r"model\.2\.eps is 1e-05, but other BatchNorms have 0\.001; one eps per model",
    ),
    "spikeyolo_huge_t": (
        lambda p, m, d: P.spikeyolo_like(p, time_steps=10**9),
        r"model\.0\.T must be an integer in \[1, 10000\], got 1000000000",
    ),
    "shipped_record_cut": (
        lambda p, m, d: P.rezip(DEFAULT_CHECKPOINT, p, lambda n, b: b[:-4] if n.endswith("/data/7") else b),
        r"storage '7' declares \d+ bytes, its record holds \d+",
    ),
    "shipped_weight_flipped": (
        lambda p, m, d: P.rezip(
            DEFAULT_CHECKPOINT, p, _flip_weight_byte
        ),  # zip CRC recomputed: only the SHA-256 sees it
        r"checksum mismatch .* the file is damaged or was edited",
    ),
}

_RUNNER = r"""
import contextlib, io, json, resource, sys
from pathlib import Path
from emsdeploy.checkpoint import load_any
from emsdeploy.cli.main import main
from emsdeploy.errors import CheckpointError

files, out = json.loads(sys.argv[1]), Path(sys.argv[2])
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def argv(cmd, f, o):
    return {"convert": [f, "-o", f"{o}/c.pt"], "inspect": [f], "trace": [f, "-o", f"{o}/t.emsir"],
            "export": [f, "--target", "onnx", "-o", f"{o}/e.onnx"], "energy": [f, "--limit", "1"],
            "verify": [f, "--limit", "1"]}[cmd]
for m in ("convert", "inspect", "trace", "export", "energy", "verify"):
    __import__(f"emsdeploy.cli.cmd_{m}")
load_any(sys.argv[3])  # warm: the baseline includes torch, the CLI and one real load
base = rss_mb()
res = {}
for name, f in files.items():
    o = out / name
    o.mkdir()
    res[name] = {}
    try:
        load_any(f)
        res[name]["load_any"] = ["loaded", ""]
    except CheckpointError as e:
        res[name]["load_any"] = [2, "error: " + str(e) + "\n"]
    except BaseException as e:
        res[name]["load_any"] = ["traceback", repr(e)]
    for cmd in ("convert", "inspect", "trace", "export", "energy", "verify"):
        err = io.StringIO()
        sys.argv = ["emsdeploy", cmd, *argv(cmd, f, o)]
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main()
                code = 0
            except SystemExit as e:
                code = e.code
            except BaseException as e:
                code = "traceback " + repr(e)
        res[name][cmd] = [code, err.getvalue()]
    res[name]["outputs"] = sorted(p.name for p in o.iterdir())
print(json.dumps({"results": res, "base_mb": base, "peak_mb": rss_mb()}))
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("hostile")
    marker = d / "marker"
    marker.write_bytes(P.MARKER_BYTES)
    files = {}
    for name, (build, _) in CASES.items():
        files[name] = str(build(d / f"{name}.pt", marker, d))
    return {"dir": d, "marker": marker, "files": files}


@pytest.fixture(scope="module")
def cli_runs(workdir) -> dict:
    out = workdir["dir"] / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, json.dumps(workdir["files"]), str(out), str(DEFAULT_CHECKPOINT)],
        cwd=workdir["dir"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(CASES))
def test_every_reading_command_refuses(name, workdir, cli_runs):
    path, pattern = workdir["files"][name], CASES[name][1]
    runs = cli_runs["results"][name]
    for cmd in COMMANDS:
        code, err = runs[cmd]
        assert code == 2, f"{cmd}: exit {code}: {err[-2000:]}"
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{cmd}: not one error line: {err!r}"
        assert path in lines[0], f"{cmd}: the message does not name the file: {lines[0]}"
        assert re.search(pattern, lines[0]), f"{cmd}: {lines[0]}"
    assert runs["outputs"] == [], f"outputs written: {runs['outputs']}"


def test_nothing_ran_and_memory_stayed_bounded(workdir, cli_runs):
    """After every payload through every command: marker intact, no stray files, peak RSS bounded."""
    assert workdir["marker"].read_bytes() == P.MARKER_BYTES
    stray = sorted(p.name for p in workdir["dir"].iterdir() if p.suffix != ".pt" and p.name not in ("marker", "out"))
    assert stray == [], f"files appeared: {stray}"  # e.g. _latin1_encode.patch, pwned
    grown = cli_runs["peak_mb"] - cli_runs["base_mb"]
    print(f"peak RSS {cli_runs['peak_mb']:.0f} MB, {grown:.0f} MB over the warmed-up baseline")
    assert grown < RSS_BOUND_MB, f"peak RSS grew by {grown:.0f} MB"


def test_the_torchscript_payload_is_live_under_torch_load(tmp_path):
    """Control: torch's TorchScript loader runs both payloads (so the refusals above are meaningful)."""
    markers = []
    for via_ops in (False, True):
        marker = tmp_path / f"marker{int(via_ops)}"
        marker.write_bytes(P.MARKER_BYTES)
        markers.append(marker)
        # what torch.load (2.3) dispatches a TorchScript zip to, whatever weights_only says
        torch.jit.load(P.torchscript(tmp_path / f"ts{int(via_ops)}.pt", marker, via_ops))
    assert [m.read_bytes() for m in markers] == [b"AAAA", b"BBBB"]


@pytest.mark.parametrize(
    "key", sorted(__import__("emsdeploy.checkpoint.safe_unpickle", fromlist=["_ALLOWED"])._ALLOWED)
)
def test_build_on_any_allowed_global_is_refused_before_any_effect(tmp_path, key):
    from emsdeploy.checkpoint.safe_unpickle import _ALLOWED

    obj = _ALLOWED[key]
    before = dict(getattr(obj, "__dict__", {}))
    path = P.torch_zip(tmp_path / "b.pt", None, pkl=P.build_on_global(*key))
    with pytest.raises(UnsafeCheckpointError, match=r"b\.pt: refused to set state on"):
        load_any(path)
    assert not hasattr(obj, "dump_patches") and dict(getattr(obj, "__dict__", {})) == before


def test_legacy_format_of_our_checkpoint_loads_identically(tmp_path):
    """The pre-1.6 stream layout is read too (bounded the same way), with the same weights."""
    data = torch.load(DEFAULT_CHECKPOINT, weights_only=True)
    legacy = tmp_path / "legacy.pt"
    torch.save(data, legacy, _use_new_zipfile_serialization=False)
    a, b = load_any(DEFAULT_CHECKPOINT), load_any(legacy)
    assert list(a.state_dict) == list(b.state_dict)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    cut = tmp_path / "legacy_cut.pt"
    cut.write_bytes(legacy.read_bytes()[:-5])
    with pytest.raises(
        CheckpointError, match=r"legacy_cut\.pt: not a readable PyTorch checkpoint \(storage '\w+' is cut short"
    ):
        load_any(cut)


def test_files_without_a_checksum_still_load(tmp_path):
    """Checkpoints written before the SHA-256 existed load (their records' sizes and CRCs are checked)."""
    data = torch.load(DEFAULT_CHECKPOINT, weights_only=True)
    assert len(data.pop("sha256")) == 64
    old = tmp_path / "old.pt"
    torch.save(data, old)
    ckpt = load_any(old)
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in data["state_dict"].items())


def test_a_huge_config_is_never_allocated(tmp_path):
    """A config asking for 65536-channel convs is refused by shape, not built in memory."""
    import resource

    from emsdeploy.checkpoint import Checkpoint

    cfg = {**_GOOD_YAML, "width_multiple": 16.0, "backbone": [[-1, 1, "Conv_1", [65536, 3, 2]]]}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # refused by the channel limit (emsdeploy.fileio) before any shape check or allocation
    with pytest.raises(CheckpointError, match=r"1,048,576 channels; the limit is"):
        Checkpoint(cfg, {}, 4, "direct", {}, tmp_path / "x.pt").build()
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 200


def test_an_opcode_bomb_is_cut_off(tmp_path):
    """A pickle of a million tiny memoised dicts stops at MAX_OPS, within bounded memory."""
    import resource
    import struct
    import zipfile

    from emsdeploy.checkpoint.safe_unpickle import MAX_OPS

    pkl = b"\x80\x02(" + b"".join(b"}r" + struct.pack("<I", i) for i in range(MAX_OPS // 2 + 1)) + b"l."
    path = tmp_path / "ops.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UnsafeCheckpointError, match=r"ops\.pt: pickle runs more than 1,000,000 opcodes"):
        load_any(path)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < RSS_BOUND_MB


def test_too_many_classes_are_refused(tmp_path):
    pkl = b"\x80\x02(" + b"".join(f"cmodels.common\nC{i}\n".encode() for i in range(5000)) + b"l."
    path = P.torch_zip(tmp_path / "cls.pt", None, pkl=pkl)
    with pytest.raises(UnsafeCheckpointError, match=r"cls\.pt: pickle names more than 4096 classes"):
        load_any(path)
