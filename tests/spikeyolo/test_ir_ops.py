"""SpikeYOLO's IR ops on hand-built graphs: strided padded max-pool, DFL decoding, integer spikes
through ref-float, the stepwise ONNX graph and the SOP counter (graded and spike-driven)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emsdeploy.energy.profiles import load_profile
from emsdeploy.energy.report import energy_report
from emsdeploy.errors import IRValidationError, PassError
from emsdeploy.exporters.onnx import StepwiseSession
from emsdeploy.exporters.onnx.export import export_onnx
from emsdeploy.ir import (
    LIF,
    Concat,
    Conv2d,
    DFLDecode,
    Graph,
    Input,
    IntegerLIF,
    Kind,
    MaxPool2d,
    Readout,
    read_ir,
    write_ir,
)
from emsdeploy.passes import flatten_fanin
from emsdeploy.passes.expand_fanin import expand_fanin
from emsdeploy.simulators.ref_float import RefFloat
from emsdeploy.simulators.sops import count_sops
from models.boxes import decode_dfl
from tests.helpers import integer_detector

FIXTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "official" / "spikeyolo_n_T1"


def _input(seed: int = 1) -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_maxpool_stride_and_padding() -> None:
    assert MaxPool2d(2).stride == 2 and MaxPool2d(2).plain
    op = MaxPool2d(5, 1, 2)
    assert not op.plain and op.output_shape([(4, 7, 9)]) == (4, 7, 9)
    assert MaxPool2d(3, 2, 1).output_shape([(1, 8, 8)]) == (1, 4, 4)
    with pytest.raises(IRValidationError, match="padding must lie in 0..kernel//2"):
        MaxPool2d(3, 1, 2)
    x = torch.randn(2, 4, 7, 9) - 5.0  # all negative: a zero border would win, the −inf one never does
    g = Graph({"time_steps": 1})
    g.add("input", Input((4, 7, 9)))
    g.add("pool", MaxPool2d(5, 1, 2), ["input"])
    g.outputs = ["pool"]
    out = RefFloat(g.validate()).run(x).outputs["pool"][0]
    assert torch.equal(out, F.max_pool2d(x, 5, 1, 2))


def test_integer_kinds_flow_through_routing() -> None:
    g = integer_detector()
    assert g.kind("lif1") is Kind.INTEGER and g.kind("up") is Kind.INTEGER and g.kind("cat") is Kind.INTEGER
    assert g.kind("dw") is Kind.CURRENT and g.kind("pool2") is Kind.CURRENT
    with pytest.raises(IRValidationError, match="cannot mix spikes"):
        Concat().check_inputs([(2, 4, 4), (2, 4, 4)], [Kind.INTEGER, Kind.CURRENT])
    with pytest.raises(IRValidationError, match="does not accept integer"):
        IntegerLIF().check_inputs([(2, 4, 4)], [Kind.INTEGER])  # integer spikes need a synapse first


def test_serialize_round_trip(tmp_path: Path) -> None:
    g = integer_detector()
    back = read_ir(write_ir(g, tmp_path / "g.emsir"))
    assert [n.name for n in back] == [n.name for n in g]
    assert all(back[n.name].op.same_as(n.op) for n in g)


def test_dfl_decode_reproduces_the_official_pred() -> None:
    ref = np.load(FIXTURE / "reference.npz")
    raws = [ref[f"head_raw__{i}"] for i in range(3)]
    op = DFLDecode(80, (8, 16, 32), 16)
    assert op.output_shape([r.shape[1:] for r in raws]) == ref["pred"].shape[1:]
    for r in (raws, [torch.from_numpy(a) for a in raws]):
        pred = np.asarray(decode_dfl(r, op.strides, op.nc, op.reg_max))
        np.testing.assert_allclose(pred, ref["pred"], rtol=1e-5, atol=1e-4)
    with pytest.raises(IRValidationError, match="4·reg_max \\+ nc = 144"):
        op.check_inputs([(143, 8, 8), (144, 4, 4), (144, 2, 2)], [Kind.ANALOG] * 3)


def test_ref_float_matches_a_direct_torch_computation() -> None:
    g, x = integer_detector(time_steps=2), _input()
    trace = RefFloat(g).run(x, record="neurons")
    p = {n.name: n.op for n in g}

    def conv(name: str, v: torch.Tensor) -> torch.Tensor:
        op = p[name]
        b = None if op.bias is None else torch.tensor(op.bias)
        return F.conv2d(v, torch.tensor(op.weight), b, op.stride, op.padding, op.dilation, op.groups)

    state: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def ilif(name: str, current: torch.Tensor) -> torch.Tensor:
        u = current if name not in state else (state[name][0] - state[name][1]) * 0.25 + current
        s = torch.round(torch.clamp(u, 0, 4))
        state[name] = (u, s)
        return s

    a = p["bn1"]
    for t in range(2):
        stem = conv("stem", x)
        s2 = ilif("lif2", conv("pw", ilif("lif1", stem)) * torch.tensor(a.scale).float().view(1, -1, 1, 1)
                  + torch.tensor(a.shift).float().view(1, -1, 1, 1))  # fmt: skip
        res = conv("proj", ilif("lif3", conv("dw", s2))) + stem
        y1 = F.max_pool2d(res, 5, 1, 2)
        s4 = ilif("lif4", torch.cat((res, y1, F.max_pool2d(y1, 5, 1, 2)), 1))
        ilif("lif5", conv("down", s4))
        for name in ("lif1", "lif2", "lif3", "lif4", "lif5"):
            assert torch.equal(trace.records[name]["s"][t], state[name][1]), (name, t)
    assert {int(v) for v in trace.records["lif4"]["s"].unique()} == {0, 1, 2, 3, 4}
    readouts = [trace.outputs["readout.0"], trace.outputs["readout.1"]]
    assert torch.equal(trace.outputs["decode"], decode_dfl(readouts, (2.0, 4.0), 3, 4))
    assert trace.outputs["decode"].shape == (2, *g.shape("decode"))


def test_onnx_is_exact_against_ref_float(tmp_path: Path) -> None:
    g, x = integer_detector(time_steps=3), _input(2)
    ref = RefFloat(g).run(x, record="neurons")
    path = tmp_path / "m.onnx"
    export_onnx(g, path, spikes=True)
    sess = StepwiseSession(path)
    assert sess.meta.decode_kind == "dfl" and sess.meta.reg_max == 4
    out = sess.run(x.numpy(), record="neurons")
    for name, rec in ref.records.items():
        got = out.records[name]["s"]
        assert got.dtype == np.uint8 and np.array_equal(got, rec["s"].numpy().astype(np.uint8)), name
    np.testing.assert_allclose(out.outputs["decode"], ref.outputs["decode"].numpy(), rtol=1e-5, atol=1e-4)
    dets = sess.detect(x.numpy(), conf=0.5)
    assert len(dets) == 2 and all(d.boxes.shape[1] == 4 for d in dets)
    # node-isolated: every I-LIF fed the reference's own spikes and state
    iso = tmp_path / "iso.onnx"
    export_onnx(g, iso, isolate=True)
    isolated = StepwiseSession(iso).run_isolated(x.numpy(), ref)
    for name, rec in ref.records.items():
        assert np.array_equal(isolated.records[name]["s"], rec["s"].numpy().astype(np.uint8)), name


def test_onnx_rounds_ties_to_even_and_resets_softly(tmp_path: Path) -> None:
    """Membranes on exact halves (dyadic currents), carried over 4 steps: ONNX Round = torch.round."""
    g = Graph({"time_steps": 4})
    g.add("input", Input((1, 8, 8), "frames"))
    g.add("lif", IntegerLIF(0.25, 4), ["input"])
    g.add("conv", Conv2d(np.ones((1, 1, 1, 1), np.float32)), ["lif"])
    g.add("readout", Readout(), ["conv"])
    g.outputs = ["readout"]
    g.validate()
    rng = np.random.default_rng(3)
    x = (rng.integers(-24, 96, (2, 4, 1, 8, 8)) / 16).astype(np.float32)  # k/16 in [−1.5, 6)
    x[:, 0, 0, 0, :5] = [0.5, 1.5, 2.5, 3.5, 4.5]
    ref = RefFloat(g).run(torch.from_numpy(x), record="neurons").records["lif"]["s"].numpy()
    assert list(ref[0, 0, 0, 0, :5]) == [0, 2, 2, 4, 4]
    path = tmp_path / "lif.onnx"
    export_onnx(g, path, spikes=True)
    got = StepwiseSession(path).run(x, record="neurons").records["lif"]["s"]
    assert np.array_equal(got, ref.astype(np.uint8))


def _brute_force(g: Graph, x: torch.Tensor) -> dict[str, tuple[int, int]]:
    """Per conv fed by integer spikes: (graded events, spike-driven accumulates), from convolving
    the nonzero mask and the values with all-ones kernels of the same geometry."""
    trace = RefFloat(g).run(x, record="all")
    out = {}
    for n in g.of_type(Conv2d):
        src = n.inputs[0]
        if g.kind(src) is not Kind.INTEGER:
            continue
        op: Conv2d = n.op  # type: ignore[assignment]
        v = trace.records[src]["s" if "s" in trace.records[src] else "y"].double()
        ones = torch.ones(op.weight.shape, dtype=torch.float64)
        count = [int(F.conv2d(a.flatten(0, 1), ones, None, op.stride, op.padding, op.dilation, op.groups).sum())
                 for a in ((v != 0).double(), v)]  # fmt: skip
        out[n.name] = (count[0], count[1])
    return out


def test_sops_of_integer_spikes_graded_and_spike_driven() -> None:
    g, x = integer_detector(time_steps=2), _input(4)
    counts = count_sops(g, [x])
    expected = _brute_force(g, x)
    rows = {r.name: r for r in counts.synapses}
    assert set(expected) == {"pw", "dw", "proj", "down", "head.0", "head.1"}
    for name, (graded, driven) in expected.items():
        r = rows[name]
        assert r.is_ac and r.is_integer
        assert int(r.sops.sum()) == graded and int(r.value_sops.sum()) == driven, name
        assert driven > graded  # integers above 1 occur
    stem = rows["stem"]
    assert not stem.is_ac and int(stem.value_sops.sum()) == 0
    # the report prices the chosen mode and lists both; the formula's rate is the mean integer
    prof = load_profile("45nm-fp32")
    for mode in ("spike-driven", "graded"):
        rep = energy_report(counts, prof, integer_mode=mode)
        dw = next(layer for layer in rep["layers"] if layer["name"] == "dw")
        assert dw["sop_exact"] == round((expected["dw"][1] if mode == "spike-driven" else expected["dw"][0]) / 2)
        assert dw["sop_graded"] == round(expected["dw"][0] / 2) and dw["sop_spike_driven"] == round(
            expected["dw"][1] / 2
        )
        assert dw["firing_rate_paper"] > dw["firing_rate"]
        assert rep["total"]["integer_mode"] == mode
    with pytest.raises(ValueError, match="integer_mode"):
        energy_report(counts, prof, integer_mode="binary")


def test_loihi_fan_in_refuses_overlapping_pools() -> None:
    g = Graph({"time_steps": 1})
    g.add("input", Input((1, 8, 8)))
    g.add("conv", Conv2d(np.ones((2, 1, 3, 3), np.float32), None, 1, 1), ["input"])
    g.add("lif", LIF(), ["conv"])
    g.add("pool", MaxPool2d(3, 1, 1), ["lif"])
    g.add("conv2", Conv2d(np.ones((2, 2, 1, 1), np.float32)), ["pool"])
    g.add("readout", Readout(), ["conv2"])
    g.outputs = ["readout"]
    with pytest.raises(PassError, match=r"pool \(MaxPool2d kernel 3, stride 1, padding 1\)"):
        expand_fanin(flatten_fanin(g.validate()), 64)


def test_nir_runs_integer_neurons_on_the_host_with_the_reason() -> None:
    from emsdeploy.exporters.nir.export import build_nir

    cuts = {h.node: h for h in build_nir(integer_detector()).cuts}
    assert cuts["lif1"].cut and "binary spikes only" in cuts["lif1"].reason
