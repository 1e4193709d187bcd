"""The run contract (emsdeploy/ir/runtime.py) is the one result type, record selection, input
encoding and box decoding of every backend (issue 16).

Two kinds of evidence: every backend's ``run`` really returns :class:`Trace` (ref-float,
ref-fixed, the PyTorch level of verify, the float and fixed-point ONNX runtimes, Lava), and a
scan of the source tree finds no second definition of any of the four concepts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from emsdeploy.errors import InputError
from emsdeploy.ir import Conv2d, Decode
from emsdeploy.ir.runtime import (
    EncodingError,
    Trace,
    decode_boxes,
    decode_readouts,
    encoding_steps,
    record_set,
    select_records,
)
from emsdeploy.models.encoding import time_first
from emsdeploy.simulators import RefFixed, RefFloat
from emsdeploy.tracer import trace
from tests.helpers import tiny_ee
from tests.loihi_cases import lowered, mixed_graph

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("emsdeploy", "exporters", "simulators", "models")


def _modules() -> dict[str, ast.Module]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            found[str(path.relative_to(REPO))] = ast.parse(path.read_text(), str(path))
    return found


@pytest.fixture(scope="module")
def modules() -> dict[str, ast.Module]:
    return _modules()


@pytest.fixture(scope="module")
def tiny():
    model = tiny_ee(time_steps=2, seed=1)
    return model, trace(model, (32, 32))


@pytest.fixture(scope="module")
def fixed_case():
    q = lowered(mixed_graph(seed=0, size=16, time_steps=2))
    return q, torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))


# --- one result type -------------------------------------------------------------------------


def test_no_other_trace_class_and_no_namespace_results(modules):
    traces = [
        (f, node.name) for f, m in modules.items() for node in ast.walk(m)
        if isinstance(node, ast.ClassDef) and node.name.endswith("Trace")
    ]  # fmt: skip
    assert traces == [("emsdeploy/ir/runtime.py", "Trace")]
    namespaces = [
        f for f, m in modules.items() for node in ast.walk(m)
        if (isinstance(node, ast.Name) and node.id == "SimpleNamespace")
        or (isinstance(node, ast.Attribute) and node.attr == "SimpleNamespace")
        or (isinstance(node, ast.ImportFrom) and any(a.name == "SimpleNamespace" for a in node.names))
    ]  # fmt: skip
    assert namespaces == []


def test_float_backends_return_the_trace(tiny):
    from emsdeploy.exporters.onnx import StepwiseSession, build_onnx
    from emsdeploy.verify.torch_level import run_torch

    model, g = tiny
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ref = RefFloat(g).run(x, record="neurons")
    onnx = StepwiseSession(build_onnx(g, spikes=True), threads=1).run(x.numpy(), record="neurons")
    torch_level = run_torch(model, g, x)
    for tr in (ref, onnx, onnx.to_torch(), torch_level):
        assert type(tr) is Trace and tr.time_steps == 2
        assert set(tr.outputs) == set(g.outputs)
    decode = g.outputs[-1]
    np.testing.assert_allclose(onnx.outputs[decode], ref.outputs[decode].numpy(), rtol=1e-5, atol=1e-3)
    # spike counts read the same way from torch and numpy records (PyTorch and ref-float are
    # spike-exact; onnxruntime's float32 may flip a spike that sits on the threshold)
    counts = ref.spike_counts()
    assert counts == torch_level.spike_counts() and sum(counts.values()) > 0
    onnx_counts = onnx.spike_counts()
    assert set(counts) <= set(onnx_counts)
    assert abs(sum(onnx_counts[n] for n in counts) - sum(counts.values())) <= 0.01 * sum(counts.values())
    assert onnx.to_torch().spikes(next(iter(counts))).dtype == torch.float32


@pytest.mark.onnx
def test_fixed_backends_return_the_trace(fixed_case):
    from emsdeploy.exporters.onnx.fixed import build_fixed_onnx
    from emsdeploy.exporters.onnx.fixed_runtime import FixedSession
    from emsdeploy.verify.chain import _raw_view

    q, x = fixed_case
    ref = RefFixed(q).run(x, record="all", raw=True)
    onnx = FixedSession(build_fixed_onnx(q, timing="lava", record=True).SerializeToString(), threads=1).run(
        x.numpy(), record="all"
    )
    for tr in (ref, onnx, _raw_view(ref, list(ref.records))):
        assert type(tr) is Trace and tr.time_steps == 2
    assert ref.spike_counts() == onnx.spike_counts()


@pytest.mark.lava
def test_lava_returns_the_trace(fixed_case, tmp_path):
    from emsdeploy.exporters.lava.dag import dag_from_graph, write_dag
    from emsdeploy.exporters.lava.runner import run_in_subprocess

    q, x = fixed_case
    path = write_dag(dag_from_graph(q), tmp_path / "net.lava.h5")
    lava = run_in_subprocess(path, x, record="neurons", timeout=300)
    ref = RefFixed(q).run(x, record="neurons")
    assert type(lava) is Trace and lava.time_steps == 2 and lava.timings["run_s"] >= 0
    assert lava.spike_counts() == ref.spike_counts()
    decode = next(n.name for n in q.of_type(Decode))
    # one decoding: numpy (Lava) and torch (ref-fixed) give the same boxes from the same readouts
    np.testing.assert_allclose(lava.outputs[decode], ref.outputs[decode].numpy(), rtol=1e-12, atol=1e-9)


# --- one record selection --------------------------------------------------------------------


def test_record_selection(tiny):
    _, g = tiny
    neurons = record_set(g, "neurons")
    assert neurons and all(g[n].op.type_name in ("LIF", "SiLUNeuron") for n in neurons)
    assert neurons < record_set(g, "all") and record_set(g, None) == set()
    assert not any(g[n].op.timeless for n in record_set(g, "all"))
    conv = g.of_type(Conv2d)[0].name  # any node may be named, not only neurons
    assert record_set(g, [conv]) == {conv}
    with pytest.raises(InputError, match=r"cannot record unknown nodes \['nope'\]"):
        record_set(g, ["nope"])
    assert select_records(["b", "a", "b"], neurons=["a"], every=["a", "b"]) == ["b", "a"]
    assert select_records("all", neurons=["a"], every=["a", "b"]) == ["a", "b"]
    with pytest.raises(InputError, match="record 'everything' unknown"):
        select_records("everything", neurons=[], every=[])
    with pytest.raises(InputError, match=r"unknown layers \['x'\] of the netx network"):
        select_records(["x"], neurons=[], every=["a"], what="layers", hint=" of the netx network")


def _is_record_switch(node: ast.AST) -> bool:
    """``x == "neurons"``, or ``x in ("neurons", "all")``: a branch on a record argument."""
    if not isinstance(node, ast.Compare):
        return False
    for operand in (node.left, *node.comparators):
        if isinstance(operand, ast.Constant) and operand.value == "neurons":
            return True
        if isinstance(operand, (ast.Tuple, ast.List, ast.Set)):
            values = {e.value for e in operand.elts if isinstance(e, ast.Constant)}
            if {"neurons", "all"} <= values:
                return True
    return False


def test_record_selection_is_defined_once(modules):
    """Only the run contract branches on a record argument's "neurons" / "all"."""
    where = sorted({f for f, m in modules.items() for node in ast.walk(m) if _is_record_switch(node)})
    assert where == ["emsdeploy/ir/runtime.py"]


# --- one encoding -> per-step input ----------------------------------------------------------


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_encoding_steps_for_numpy_and_torch(lib):
    arr = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    x = torch.from_numpy(arr) if lib == "torch" else arr
    T, step = encoding_steps(x, "direct", (3, 4, 4), None, 5)
    assert T == 5 and step(0) is x and step(4) is x
    frames = x[:, None].repeat(1, 3, 1, 1, 1) if lib == "torch" else np.repeat(arr[:, None], 3, 1)
    frames[:, 1] += 1
    T, step = encoding_steps(frames, "frames", (3, None, None))
    assert T == 3 and float(step(1)[0, 0, 0, 0]) == 1.0
    tf = time_first(frames, "frames", T)
    assert tuple(tf.shape) == (3, 2, 3, 4, 4) and float(tf[1, 0, 0, 0, 0]) == 1.0
    assert tuple(time_first(x, "direct", 4).shape) == (4, 2, 3, 4, 4)
    with pytest.raises(EncodingError, match=r"direct encoding takes images \[B, 3, 4, 5\], got \(2, 3, 4, 4\)"):
        encoding_steps(x, "direct", (3, 4, 5), None, 2)
    with pytest.raises(EncodingError, match=r"\(expected 1 input channels, got 3\)"):
        encoding_steps(x, "direct", (1, None, None), None, 2)
    with pytest.raises(EncodingError, match=r"frames encoding takes \[B, T, 3, H, W\].*5-D \[B, T, C, H, W\]"):
        encoding_steps(x, "frames", (3, None, None))
    with pytest.raises(EncodingError, match="3 frames but time_steps=2"):
        encoding_steps(frames, "frames", (3, 4, 4), 2)
    with pytest.raises(EncodingError, match="time_steps must be >= 1"):
        encoding_steps(x, "direct", (3, 4, 4), None, 0)
    assert issubclass(EncodingError, InputError) and issubclass(EncodingError, ValueError)


def test_encoding_is_defined_once(modules):
    """The encoding's checks (their messages) appear in one module; every backend calls it."""
    where = sorted(
        {f for f, m in modules.items() for node in ast.walk(m)
         if isinstance(node, ast.Constant) and isinstance(node.value, str)
         and ("encoding takes" in node.value or "encoding expects" in node.value or "frames but time_steps" in node.value)}
    )  # fmt: skip
    assert where == ["models/encoding.py"]


# --- one box decoding ------------------------------------------------------------------------


def test_decoding_agrees_across_layouts_and_array_types(tiny):
    model, g = tiny
    op = g.of_type(Decode)[0].op
    rng = np.random.default_rng(0)
    readouts = [rng.normal(size=(2, op.na * op.no, *g.shape(i)[1:])) for i in g.of_type(Decode)[0].inputs]
    boxes_np = decode_readouts(readouts, op.anchors, op.strides, op.nc)
    boxes_t = decode_boxes([torch.from_numpy(r) for r in readouts], op)
    assert isinstance(boxes_np, np.ndarray) and boxes_t.dtype == torch.float64
    np.testing.assert_allclose(boxes_np, boxes_t.numpy(), rtol=1e-13, atol=1e-12)
    # the model's own decode (raw head layout [B, na, ny, nx, no]) is the same function
    raws = [torch.from_numpy(r).view(2, op.na, op.no, *r.shape[2:]).permute(0, 1, 3, 4, 2) for r in readouts]
    assert torch.equal(model.detect.decode(raws), boxes_t)


def test_decoding_is_defined_once(modules):
    """Box decoding is a grid plus a sigmoid: one function in the tree builds both."""
    where = []
    for f, m in modules.items():
        for fn in ast.walk(m):
            if isinstance(fn, ast.FunctionDef):
                names = {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(fn)
                         if isinstance(n, (ast.Attribute, ast.Name))}  # fmt: skip
                if "meshgrid" in names and names & {"sigmoid", "exp", "_sigmoid"}:
                    where.append((f, fn.name))
    assert where == [("models/boxes.py", "decode_raw")]


def test_the_contract_loads_without_torch():
    """A numpy-only deployment (the ONNX runtime) stands on the contract without importing torch."""
    import subprocess
    import sys

    code = (
        "import sys\nimport emsdeploy.exporters.onnx.runtime, emsdeploy.exporters.onnx.fixed_runtime\n"
        "import emsdeploy.ir.runtime\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"
