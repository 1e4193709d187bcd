"""verify's integer level: ref-fixed against lava-nc on the shipped checkpoint, and a planted
fault in an exported Lava network caught and located."""

import json
import subprocess
import sys

import h5py
import pytest

from emsdeploy.exporters.lava.loader import FOLDER_FORMAT
from emsdeploy.fileio import write_manifest
from emsdeploy.models import DEFAULT_CHECKPOINT

pytestmark = pytest.mark.lava

ARGS = ["--input-size", "32", "--steps", "2", "--limit", "1"]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "emsdeploy", *args], capture_output=True, text=True, timeout=900)


def test_full_chain_on_the_shipped_checkpoint():
    r = _run("verify", str(DEFAULT_CHECKPOINT), *ARGS, "--json")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout)
    pairs = {(c["a"], c["b"], c["mode"]): c for c in report["comparisons"]}
    assert set(pairs) == {
        ("torch", "ref-float", "end-to-end"), ("torch", "ref-float", "isolated"),
        ("ref-float", "onnx", "end-to-end"), ("ref-float", "onnx", "isolated"),
        ("ref-fixed", "lava", "end-to-end"),
    }  # fmt: skip
    lava = pairs[("ref-fixed", "lava", "end-to-end")]
    assert lava["integer"] and lava["exact"] and lava["spikes_compared"] > 10_000
    q = report["quantization"]
    assert 0.9 < q["spike_agreement"] <= 1 and q["spikes_compared"] > 0


def test_planted_lava_fault_is_caught_and_located(tmp_path):
    out = tmp_path / "lava"
    r = _run("export", str(DEFAULT_CHECKPOINT), "--target", "lava", "-o", str(out), "--input-size", "32")
    assert r.returncode == 0, r.stderr
    target = "model.1.residual_function.3<-model.1.residual_function.0"
    with h5py.File(out / "network.lava.h5", "r+") as f:
        proc = next(g for g in f["processes"].values() if g.attrs["name"] == target)
        w = proc["weight"][()]
        w[0, 1, 1, :] += 40  # one output channel's centre taps, every input channel
        proc["weight"][...] = w
    # a planted fault that the manifest would refuse: list the faulty file as the export's own
    write_manifest(out, FOLDER_FORMAT)
    r = _run("verify", str(DEFAULT_CHECKPOINT), *ARGS, "--targets", "lava", "--lava", str(out), "--json")
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    report = json.loads(r.stdout)
    lava = next(c for c in report["comparisons"] if c["b"] == "lava")
    assert not lava["ok"] and lava["mismatches"] > 0
    first = lava["first_divergence"]
    assert first["node"] == "model.1.residual_function.3" and first["step"] >= 1
