"""Issue 19, a user's first hour: sizes, encodings, names and numbers, through the real CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import FIXTURES
from tests.helpers import invoke, tiny_checkpoint

SIZE = 64
CHECKPOINT_COMMANDS = ("energy", "verify", "run", "eval", "export", "trace", "inspect")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("first_hour"), SIZE)


def _one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("size", ["7", "100", "64x70"])
def test_sizes_are_checked_against_the_strides_up_front(ckpt, size, tmp_path):
    for cmd in (
        ("energy", ckpt, "--limit", "1"),
        ("inspect", ckpt),
        ("export", ckpt, "--target", "nir", "-o", tmp_path / "m.nir"),
        ("trace", ckpt, "-o", tmp_path / "m.emsir"),
        ("verify", ckpt, "--targets", "ref", "--limit", "1"),
    ):
        line = _one_line_error(invoke(*cmd, "--input-size", size), "a multiple of 32, at least 32", "nearest")
        assert "Add inputs" not in line
    assert not list(tmp_path.iterdir())


def test_npy_input_gives_the_size(ckpt, tmp_path):
    npy = tmp_path / "x.npy"
    np.save(npy, np.random.default_rng(0).random((1, 3, 32, 96), dtype=np.float32))
    res = invoke("energy", ckpt, "--input", npy, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["model"]["input_shape"] == [3, 32, 96]
    # the checkpoint was trained at 64x64: before, a 32x96 array was refused as the wrong shape
    res = invoke("verify", ckpt, "--input", npy, "--targets", "ref", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["input"]["kind"] == "user"


def test_random_fallback_is_a_warning_line(ckpt):
    res = invoke("energy", ckpt, "--input-size", "96", "--limit", "1", "--json")
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 1 and "random" in warnings[0] and "--input" in warnings[0]
    assert json.loads(res.stdout)["input"]["kind"] == "random"  # stdout stays pure JSON
    quiet = invoke("energy", ckpt, "--limit", "1", "--json")  # the default set fits: no warning
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


@pytest.mark.parametrize("command", CHECKPOINT_COMMANDS)
def test_every_checkpoint_command_takes_encoding(command):
    res = invoke(command, "--help")
    assert res.exit_code == 0 and "--encoding [direct|frames]" in res.stdout


def test_encoding_contradicting_our_checkpoint_is_one_line(ckpt, tmp_path):
    for cmd in (("energy", ckpt), ("inspect", ckpt), ("trace", ckpt, "-o", tmp_path / "m.emsir"), ("eval", ckpt)):
        _one_line_error(invoke(*cmd, "--encoding", "frames"), "'direct' encoding", "--encoding frames")


def test_official_checkpoint_read_with_event_frames():
    ckpt = FIXTURES / "tiny_all_coco_T4" / "checkpoint_last_fp32.pt"
    if not ckpt.is_file():
        pytest.skip(f"official fixture {ckpt} missing")
    for encoding in ("direct", "frames"):
        res = invoke("inspect", ckpt, "--input-size", "64", "--json", "--encoding", encoding)
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["totals"]["encoding"] == encoding


def test_one_name_per_target():
    from emsdeploy.cli.cmd_export import TARGETS
    from emsdeploy.targets import builtin_targets

    assert sorted(builtin_targets()) == sorted(TARGETS)
    res = invoke("inspect", "--support")
    assert "lava:" in res.stdout and "lava-loihi" not in res.stdout


def _rendered_names(text: str, names: list[str]) -> None:
    """Every name appears whole at the start of a table line, and nothing is cut with an ellipsis."""
    assert "…" not in text
    starts = {line.split(" ")[0] for line in text.splitlines()}
    for n in names:
        assert n in starts, n


def test_tables_fit_80_columns_and_keep_whole_names(ckpt, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    res = invoke("inspect", ckpt)
    assert res.exit_code == 0, res.output
    assert max(len(line.rstrip()) for line in res.stdout.splitlines()) <= 80
    layers = json.loads(invoke("inspect", ckpt, "--json").stdout)["layers"]
    _rendered_names(res.stdout, [r["node"] for r in layers])
    res = invoke("energy", ckpt, "--limit", "1")
    assert res.exit_code == 0, res.output
    assert max(len(line.rstrip()) for line in res.stdout.splitlines()) <= 80
    report = json.loads(invoke("energy", ckpt, "--limit", "1", "--json").stdout)
    _rendered_names(res.stdout.split("model    :")[0], [r["name"] for r in report["layers"]])
    assert "e+" not in res.stdout  # one plain notation for energies


def test_verify_marks_skipped_checks_and_keeps_node_names(ckpt, tmp_path, monkeypatch):
    onnx = tmp_path / "m.onnx"
    assert invoke("export", ckpt, "--target", "onnx", "--spikes", "-o", onnx).exit_code == 0
    monkeypatch.setenv("COLUMNS", "80")
    res = invoke("verify", ckpt, "--targets", "onnx", "--onnx", onnx, "--limit", "1", "--nodes")
    assert res.exit_code == 0, res.output
    assert max(len(line.rstrip()) for line in res.stdout.splitlines()) <= 80
    skipped = [ln for ln in res.stdout.splitlines() if ln.startswith("onnx artifact (isolated)")]
    assert len(skipped) == 1 and skipped[0].rstrip().endswith("skipped") and "exact" not in skipped[0]
    report = json.loads(invoke("verify", ckpt, "--targets", "onnx", "--limit", "1", "--json").stdout)
    names = [n["node"] for c in report["comparisons"] for n in c["nodes"]]
    _rendered_names(res.stdout, names)


def _all_ints(value, key=""):
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "breakdown_pJ":  # energies by cost kind (keys "ac", "mac" are pJ there)
                yield from _all_ints(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _all_ints(v, key)
    else:
        yield key, value


COUNT_KEYS = {"sop_exact", "ac", "mac", "flops", "dense_sops", "weight_reads", "sop_per_step", "updates",
              "active_updates", "ops", "sop_ac", "neuron_updates", "active_neuron_updates", "elementwise",
              "membrane_reads", "membrane_writes", "samples", "time_steps"}  # fmt: skip


def test_energy_json_counts_are_integers(ckpt):
    res = invoke("energy", ckpt, "--limit", "2", "--json")
    report = json.loads(res.stdout)
    seen = [(k, v) for k, v in _all_ints({x: report[x] for x in ("layers", "neurons", "elementwise", "total", "ann")})
            if k in COUNT_KEYS]  # fmt: skip
    assert len(seen) > 100
    assert all(isinstance(v, int) for _, v in seen), [kv for kv in seen if not isinstance(kv[1], int)][:5]
    assert report["total"]["sop_ac"] == sum(r["ac"] for r in report["layers"])  # exact, not approximately


def test_piped_training_logs_plain_epoch_lines(tmp_path):
    out = tmp_path / "t.pt"
    data = "shapes:size=64,train=2,val=1,max_objects=1,min_size=16,max_size=30"
    res = invoke("train", "--data", data, "--epochs", "2", "-b", "2", "-T", "1", "--no-eval", "-o", out)
    assert res.exit_code == 0, res.output
    assert "━" not in res.stderr and "…" not in res.stderr  # no frozen bar in a log
    assert [ln.split(":")[0] for ln in res.stderr.splitlines() if ln.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]


def test_run_prints_a_header_and_draws_legibly_on_the_original_image(ckpt, tmp_path):
    from PIL import Image

    from emsdeploy.drawing import MIN_FONT, font_size

    onnx = tmp_path / "m.onnx"
    assert invoke("export", ckpt, "--target", "onnx", "-o", onnx).exit_code == 0
    rng = np.random.default_rng(0)
    for name, (w, h) in (("big.png", (640, 480)), ("small.png", (96, 64))):
        original = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(original).save(tmp_path / name)
        out = tmp_path / f"det_{name}"
        res = invoke("run", onnx, "--input", tmp_path / name, "-o", out, "--conf", "0", "--max-det", "3")
        assert res.exit_code == 0, res.output
        lines = res.stdout.splitlines()
        assert lines[1].split() == ["class", "score", "x1", "y1", "x2", "y2"] and len(lines) == 6  # header, 3 rows
        with Image.open(out) as im:
            assert im.size == (w, h)  # the original image at its size
            drawn = np.asarray(im.convert("RGB")).astype(int)
        # each label is a solid tab of one palette colour, at least a font height tall, inside the frame
        rows = np.flatnonzero((np.abs(drawn - original).sum(-1) > 0).sum(1) > w // 20)
        assert len(rows) >= font_size((w, h)) >= MIN_FONT


def test_provider_unavailable_is_one_line_and_cpu_runs(ckpt, tmp_path):
    import onnxruntime as ort

    from emsdeploy.providers import ort_providers

    assert ort_providers("cpu") == ["CPUExecutionProvider"]
    onnx = tmp_path / "m.onnx"
    assert invoke("export", ckpt, "--target", "onnx", "--spikes", "-o", onnx).exit_code == 0
    npy = tmp_path / "x.npy"
    np.save(npy, np.random.default_rng(0).random((1, 3, SIZE, SIZE), dtype=np.float32))
    res = invoke("run", onnx, "--input", npy, "--provider", "cpu")
    assert res.exit_code == 0, res.output
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA: the refusal cannot be shown here")
    for cmd in (("run", onnx, "--input", npy), ("verify", ckpt, "--targets", "onnx", "--limit", "1")):
        _one_line_error(invoke(*cmd, "--provider", "cuda"), "--provider cuda", "CUDAExecutionProvider", "offers: cpu")


def test_a_npy_of_a_bad_size_is_named(ckpt, tmp_path):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((1, 3, 8, 8), np.float32))
    _one_line_error(invoke("energy", ckpt, "--input", npy), f"{npy}: inputs of 8x8 do not fit", "a multiple of 32")


def test_lava_mapping_report_keeps_whole_names():
    from emsdeploy.exporters.lava.report import format_mapping

    long = "model.10.residual_function.3<-model.10.residual_function.0.with.a.long.tail"
    procs = [
        {"process": long + suffix, "class": "Conv", "kind": "standard", "neurons": 0, "synapses": 9,
         "weight_bytes": 9, "latency": 1, "delay": 0}
        for suffix in ("_a", "_b")
    ]  # fmt: skip
    empty = {"processes": 0, "neurons": 0, "synapses": 0, "weight_bytes": 0}
    totals = {"standard": empty, "custom": empty, "host": empty, "latency_steps": 1, "run_steps": "T + 1"}
    nodes = [{"node": long + "_node", "op": "Conv2d", "placement": "chip", "processes": [long + "_a"]}]
    text = format_mapping({"processes": procs, "totals": totals, "ir_nodes": nodes})
    for name in (long + "_a", long + "_b", long + "_node"):
        assert any(line.startswith(name + " ") for line in text.splitlines()), name
