"""`emsdeploy export --target onnx` and `emsdeploy run`, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from emsdeploy.checkpoint import from_model, save_checkpoint
from emsdeploy.exporters.onnx import StepwiseSession
from emsdeploy.inputs import load_image

pytestmark = pytest.mark.onnx


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "emsdeploy", *args], capture_output=True, text=True, timeout=300)


def test_export_then_run_an_image(tiny_direct, tmp_path):
    model, _ = tiny_direct
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, from_model(model))
    onnx_path = tmp_path / "tiny.onnx"
    r = _cli("export", str(ckpt), "--target", "onnx", "-o", str(onnx_path), "--input-size", "64", "--spikes")
    assert r.returncode == 0, r.stderr
    assert "checked by onnx.checker" in r.stdout and "spikes.<node> for 21 LIF nodes" in r.stdout

    rng = np.random.default_rng(0)
    img = tmp_path / "scene.png"
    Image.fromarray((rng.random((48, 96, 3)) * 255).astype(np.uint8)).save(img)  # letterboxed to 64×64
    drawn = tmp_path / "boxes.png"
    r = _cli("run", str(onnx_path), "--input", str(img), "--conf", "0.3", "--json", "-o", str(drawn))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)["results"][0]
    assert result["box_pixels"] == "image" and result["time_steps"] == 3
    with Image.open(drawn) as im:
        assert im.size == (96, 48)  # drawn on the original image

    # the same detections as the Python API, mapped back through the letterbox
    x, lb = load_image(img, (64, 64))
    det = StepwiseSession(onnx_path).detect(x.numpy(), conf=0.3, iou=0.45)[0]
    assert len(result["detections"]) == len(det) > 0
    import torch

    boxes = lb.to_image(torch.from_numpy(det.boxes.copy())).numpy()
    got = np.array([d["box"] for d in result["detections"]])
    np.testing.assert_allclose(got, boxes, atol=0.01)
    assert all(0 <= b[0] <= b[2] <= 96 and 0 <= b[1] <= b[3] <= 48 for b in got)

    # plain text output, one line per detection
    r = _cli("run", str(onnx_path), "--input", str(img), "--conf", "0.3")
    assert r.returncode == 0 and r.stdout.startswith(f"scene.png: {len(det)} detection")

    # bad inputs: a non-image file, a .npy of the wrong channel count, a checkpoint instead of ONNX
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    np.save(tmp_path / "gray.npy", np.zeros((1, 1, 64, 64), np.float32))
    for args, message in (
        (("run", str(onnx_path), "--input", str(bad)), "notes.png: not a readable image"),
        (("run", str(onnx_path), "--input", str(tmp_path / "gray.npy")), "C, H, W = (3, 64, 64)"),
        (("run", str(ckpt), "--input", str(img)), "takes a stepwise ONNX model"),
    ):
        r = _cli(*args)
        assert r.returncode == 2, r.stdout
        assert r.stderr.startswith("error: ") and message in r.stderr and "Traceback" not in r.stderr
