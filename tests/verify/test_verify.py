"""emsdeploy verify: the chain holds on a clean model and catches a planted fault in an artifact."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from emsdeploy.checkpoint import from_model, save_checkpoint
from emsdeploy.exporters.onnx import export_onnx
from emsdeploy.fileio import seal_onnx
from emsdeploy.tracer import trace
from emsdeploy.verify import VerifyOptions, verify
from tests.helpers import tiny_ee


def _run(*args):
    return subprocess.run([sys.executable, "-m", "emsdeploy", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(path, from_model(tiny_ee(time_steps=3), {"input_size": 32}))
    return path


def test_chain_holds_on_a_clean_model(tmp_path):
    model = tiny_ee(time_steps=3)
    graph = trace(model, (32, 32))
    samples = [(f"s{i}", torch.rand(1, 3, 32, 32)) for i in range(2)]
    report = verify(graph, samples, model, VerifyOptions(targets=("ref", "onnx"), workdir=tmp_path))
    pairs = {(c.a, c.b, c.mode) for c in report.comparisons}
    assert pairs == {
        ("torch", "ref-float", "end-to-end"), ("torch", "ref-float", "isolated"),
        ("ref-float", "onnx", "end-to-end"), ("ref-float", "onnx", "isolated"),
    }  # fmt: skip
    assert report.ok and all(c.exact for c in report.comparisons)
    assert all(c.spikes_compared > 0 for c in report.comparisons)
    assert report.to_json()["ok"] is True and report.inputs == ["s0", "s1"]


def _plant_fault(src, dst, initializer, index, delta):
    m = onnx.load(str(src))
    for init in m.graph.initializer:
        if init.name == initializer:
            w = numpy_helper.to_array(init).copy()
            w[index] += delta
            init.CopyFrom(numpy_helper.from_array(w, init.name))
            break
    else:
        raise AssertionError(f"no initializer {initializer}")
    onnx.save(seal_onnx(m), str(dst))  # a consistent (re-sealed) model with a wrong weight, not a damaged file


def _expected_divergence(graph, node, index, delta, x):
    """Where the same fault, planted in the IR and run in ref-float, first changes a spike."""
    import dataclasses

    from emsdeploy.ir import LIF
    from emsdeploy.simulators import RefFloat

    faulty = graph.copy()
    w = faulty[node].op.weight.copy()
    w[index] += delta
    faulty.replace(node, op=dataclasses.replace(faulty[node].op, weight=w))
    clean, bad = RefFloat(graph).run(x, record="neurons"), RefFloat(faulty).run(x, record="neurons")
    firsts = []
    for order, n in enumerate(graph.of_type(LIF)):
        diff = (clean.records[n.name]["s"] != bad.records[n.name]["s"]).flatten(1).any(1).nonzero()
        if len(diff):
            firsts.append((int(diff[0]), order, n.name))
    step, _, name = min(firsts)
    return name, step


def test_planted_onnx_fault_exits_1_and_names_the_first_diverging_node(ckpt, tmp_path):
    from emsdeploy.pipeline import load_graph

    graph = load_graph(ckpt).graph
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    np.save(tmp_path / "x.npy", x.numpy())
    good = tmp_path / "good.onnx"
    export_onnx(graph, good, spikes=True)
    bad = tmp_path / "bad.onnx"
    fault = ("model.2.residual_function.1", (0, 0, 1, 1), 4.0)
    _plant_fault(good, bad, f"{fault[0]}.weight", fault[1], fault[2])
    r = _run("verify", str(ckpt), "--targets", "onnx", "--onnx", str(bad), "--input", str(tmp_path / "x.npy"), "--json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is False
    e2e = next(c for c in report["comparisons"] if c["b"] == "onnx" and c["mode"] == "end-to-end")
    node, step = _expected_divergence(graph, *fault, x)
    assert node.startswith("model.2.") and (e2e["first_divergence"]["node"], e2e["first_divergence"]["step"]) == (
        node,
        step,
    )
    # The same artifact, unharmed, verifies.
    r = _run("verify", str(ckpt), "--targets", "onnx", "--onnx", str(good), "--input", str(tmp_path / "x.npy"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "RESULT: OK" in r.stdout


def test_human_report_names_the_divergence(ckpt, tmp_path):
    from emsdeploy.pipeline import load_graph

    good = tmp_path / "good.onnx"
    export_onnx(load_graph(ckpt).graph, good, spikes=True)
    bad = tmp_path / "bad.onnx"
    _plant_fault(good, bad, "model.1.residual_function.1.weight", (1, 2, 1, 1), 5.0)
    r = _run("verify", str(ckpt), "--targets", "onnx", "--onnx", str(bad))
    assert r.returncode == 1
    assert "RESULT: MISMATCH" in r.stdout and "onnx (end-to-end): " in r.stdout and "first at model.1." in r.stdout


def test_unsupported_input_exits_2(ckpt, tmp_path):
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((1, 1, 8, 8), np.float32))
    r = _run("verify", str(ckpt), "--input", str(bad), "--targets", "ref")
    assert r.returncode == 2 and "x.npy" in r.stderr
    r = _run("verify", str(ckpt), "--targets", "gpu")
    assert r.returncode == 2 and "unknown verify targets" in r.stderr
