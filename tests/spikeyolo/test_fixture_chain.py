"""The official SpikeYOLO-n fixture through the IR: traced, simplified (BN and RepConv folded),
ref-float and the stepwise ONNX graph, against the official I-LIF outputs and pred
(../shared/fixtures/official/spikeyolo_n_T1, README §7's acceptance criteria)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emsdeploy.checkpoint import load_any
from emsdeploy.exporters.onnx import StepwiseSession, export_onnx
from emsdeploy.ir import Affine, Conv2d, DFLDecode, IntegerLIF, MaxPool2d
from emsdeploy.passes import run_flow
from emsdeploy.simulators.ref_float import RefFloat
from emsdeploy.tracer import trace
from emsdeploy.verify import VerifyOptions, verify
from tests.tolerances import OFFICIAL

DECODE = "model.26.decode"


@pytest.fixture(scope="module")
def fx(spikeyolo_n: Path) -> dict:
    model = load_any(spikeyolo_n / "checkpoint_stripped_fp16.pt").model().eval()
    graph = trace(model, (64, 64))
    return {
        "model": model,
        "graph": graph,
        "x": torch.from_numpy(np.load(spikeyolo_n / "input.npy")),
        "ref": np.load(spikeyolo_n / "reference.npz"),
        "order": json.loads((spikeyolo_n / "reference.json").read_text())["lif_call_order"],
    }


def _wrong(records: dict, fx: dict) -> dict[str, int]:
    out = {}
    for name in fx["order"]:
        s = np.asarray(records[name]["s"]).astype(np.uint8)
        out[name] = int((s != fx["ref"][f"lif__{name}"]).sum())
    return {n: w for n, w in out.items() if w}


def test_traced_graph_shape(fx) -> None:
    g = fx["graph"]
    assert len(g.of_type(IntegerLIF)) == 88 and {n.name for n in g.of_type(IntegerLIF)} == set(fx["order"])
    assert len(g.of_type(Affine)) == 123  # every BatchNorm, those inside BN-and-pad included
    assert [n.op.padding for n in g.of_type(MaxPool2d)] == [2, 2, 2]
    dec = g[DECODE].op
    assert isinstance(dec, DFLDecode) and dec.strides == (8.0, 16.0, 32.0) and dec.nc == 80
    assert any(n.op.groups > 1 and n.op.kernel_size == (7, 7) for n in g.of_type(Conv2d))  # SepConv dw 7×7


@pytest.mark.parametrize("form", ["traced", "simplified"])
def test_ref_float_is_exact_on_every_ilif(fx, form: str) -> None:
    g = fx["graph"] if form == "traced" else run_flow(fx["graph"], "simplify")
    out = RefFloat(g).run(fx["x"], record="neurons")
    assert _wrong(out.records, fx) == {}  # README §6: the folded float32 network is bit-exact too
    np.testing.assert_allclose(out.outputs[DECODE].numpy(), fx["ref"]["pred"], **OFFICIAL)
    for i in range(3):
        np.testing.assert_allclose(
            out.outputs[f"model.26.readout.{i}"].numpy(), fx["ref"][f"head_raw__{i}"], **OFFICIAL
        )


def test_simplify_folds_bn_and_repconv(fx) -> None:
    g = run_flow(fx["graph"], "simplify")
    assert not g.of_type(Affine)
    # every RepConv (2 per ConvBlock, 7 ConvBlocks at n) is one dense zero-padded 3×3 conv; every
    # SepRepConv with its BN (one per SepConv, 12 at n) too
    rep = [n for n in g.of_type(Conv2d) if n.name.endswith((".conv1.body.2.1", ".conv2.body.2.1", "pwconv3.body.1.1"))]
    assert len(rep) == 2 * 7 + 12
    assert all(n.op.kernel_size == (3, 3) and n.op.padding == (1, 1) and n.op.groups == 1 for n in rep)
    depthwise = {n.op.kernel_size for n in g.of_type(Conv2d) if n.op.groups > 1}
    assert depthwise == {(7, 7)}  # only SepConv's 7×7 stays depthwise (an I-LIF precedes it)


def test_onnx_is_exact_on_every_ilif(fx, tmp_path: Path) -> None:
    path = tmp_path / "spikeyolo-n.onnx"
    export_onnx(run_flow(fx["graph"], "simplify"), path, spikes=True)
    sess = StepwiseSession(path)
    out = sess.run(fx["x"].numpy(), record="neurons")
    assert _wrong(out.records, fx) == {}
    np.testing.assert_allclose(out.outputs[DECODE], fx["ref"]["pred"], **OFFICIAL)


def test_verify_chain_torch_ref_onnx(fx, tmp_path: Path) -> None:
    options = VerifyOptions(targets=("ref", "onnx"), workdir=tmp_path)
    report = verify(fx["graph"], [("fixture image 0", fx["x"][:1])], fx["model"], options)  # image 1: above
    assert {(c.a, c.b, c.mode) for c in report.comparisons} == {
        ("torch", "ref-float", "end-to-end"), ("torch", "ref-float", "isolated"),
        ("ref-float", "onnx", "end-to-end"), ("ref-float", "onnx", "isolated"),
    }  # fmt: skip
    for c in report.comparisons:
        assert len(c.nodes) == 88 and sum(r.mismatches for r in c.nodes) == 0, (c.a, c.b, c.mode)
