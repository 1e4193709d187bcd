"""`emsdeploy export SRC --target nir -o model.nir`, as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import nir
import torch

from emsdeploy.checkpoint import from_model, save_checkpoint
from emsdeploy.exporters.nir import NirOptions, export_cli, import_nir
from emsdeploy.tracer import trace
from tests.helpers import tiny_ee

from .conftest import assert_spike_exact


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emsdeploy", *args], capture_output=True, text=True, timeout=300)


def test_export_a_checkpoint_and_report_the_cuts(tmp_path):
    model = tiny_ee(time_steps=3, seed=2)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, from_model(model, {"input_size": 32}))
    out = tmp_path / "out" / "tiny.nir"
    r = _cli("export", str(ckpt), "--target", "nir", "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "type-checked by nir" in text and "21 LIF populations" in text
    assert "dt = 1 (one step), forward Euler, spike iff v > v_threshold (strict)" in text
    assert "(τ = 0.25 -> tau = 1.33333, r = 1.33333)" in text
    assert "cuts         : 5 node(s) NIR 1.0 cannot express run on the host" in text
    assert "model.1.pools  MaxPool2d on current: Output model.1.pools.in -> Input model.1.pools" in text
    assert "model.8        Upsample on current: Output model.8.in -> Input model.8" in text
    assert "model.11.decode (Decode)" in text and f"wrote        : {out}" in text

    graph = nir.read(out)  # the input size came from the checkpoint's meta
    assert list(graph.nodes["input"].input_type["input"]) == [3, 32, 32]
    assert graph.metadata["time_steps"] == 3
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert_spike_exact(trace(model, (32, 32)), import_nir(out), x)

    # an output that cannot be written: the path, the reason, no traceback, exit code 2
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    r = _cli("export", str(ckpt), "--target", "nir", "-o", str(blocker / "m.nir"))
    assert r.returncode == 2, r.stdout
    assert r.stderr.startswith("error: ") and "notes.txt/m.nir: cannot write the NIR file" in r.stderr
    assert "Traceback" not in r.stderr


def test_export_cli_lines(chain, tmp_path):
    lines = export_cli(chain, tmp_path / "c.nir", NirOptions.from_flags(spikes=True, custom_to_host=False, allow_clip=True))
    text = "\n".join(lines)
    assert "cuts         : none" in text and "host         : readout (Readout) after the last step" in text
    assert "outputs      : readout.in [5, 8, 8]" in text
    assert "note         : --spikes (onnx), --allow-clip (lava) do not apply to --target nir; ignored" in text
