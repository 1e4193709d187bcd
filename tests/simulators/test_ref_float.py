"""ref-float is spike-exact against the PyTorch model (DESIGN.md §7): fixtures, and random configs."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsdeploy.errors import InputError
from emsdeploy.ir import LIF, Conv2d, Graph, Input, Readout
from emsdeploy.models import EMSYOLO, record_neurons
from emsdeploy.passes import run_flow
from emsdeploy.simulators import RefFloat
from emsdeploy.tracer import trace
from tests.helpers import GEN1_ANCHORS, randomize_bn, tiny_ee
from tests.tolerances import FLOAT32_REORDERED, OFFICIAL


def _assert_spike_exact(trace_, rec, names):
    for name in names:
        ours, ref = trace_.records[name]["s"], rec[name]
        assert ours.shape == ref.shape, name
        n_bad = int((ours != ref).sum())
        assert n_bad == 0, f"{name}: {n_bad} spike mismatches"


@pytest.mark.parametrize("k", [0, 1])
def test_official_fixtures_spike_exact(official, k):
    from emsdeploy.checkpoint import import_official

    model = import_official(official.checkpoint, time_steps=official.T).build()
    graph = trace(model, official.inputs.shape[-2:])
    out = RefFloat(graph).run(official.input(k), record="neurons")
    for name in official.lif_names:
        spikes = out.records[name]["s"].numpy().astype(np.uint8)
        assert (spikes == official.ref(k, "spike", name)).all(), name
    for name in official.silu_names:
        np.testing.assert_allclose(out.records[name]["y"].numpy(), official.ref(k, "silu", name), **OFFICIAL)
    np.testing.assert_allclose(out.outputs[graph.outputs[-1]].numpy(), official.ref(k, "pred"), **OFFICIAL)


def test_records_and_readouts_match_the_model():
    model = tiny_ee(time_steps=3)
    graph = trace(model, (32, 32))
    x = torch.rand(2, 3, 32, 32)
    with record_neurons(model) as rec:
        pred, raws = model.predict(x)
    out = RefFloat(graph).run(x, record="neurons")
    _assert_spike_exact(out, rec, [n.name for n in graph.of_type(LIF)])
    for i, raw in enumerate(raws):
        b, na, ny, nx, no = raw.shape
        readout = out.outputs[graph.outputs[i]].view(b, na, no, ny, nx).permute(0, 1, 3, 4, 2)
        torch.testing.assert_close(readout, raw, **FLOAT32_REORDERED)
    torch.testing.assert_close(out.outputs[graph.outputs[-1]], pred, **OFFICIAL)
    u = out.records["model.1.residual_function.0"]["u"]
    s = out.records["model.1.residual_function.0"]["s"]
    assert torch.equal(s, (u > 0.5).float())  # the recorded membrane is the pre-reset U


def test_nothing_recorded_by_default_and_time_steps_override():
    graph = trace(tiny_ee(), (32, 32))
    out = RefFloat(graph).run(torch.rand(1, 3, 32, 32), time_steps=5)
    assert out.records == {} and out.time_steps == 5


def test_bad_inputs_are_explained():
    sim = RefFloat(trace(tiny_ee(), (32, 32)))
    with pytest.raises(InputError, match=r"takes images \[B, 3, 32, 32\], got \(1, 3, 16, 16\)"):
        sim.run(torch.rand(1, 3, 16, 16))
    with pytest.raises(InputError, match="unknown nodes"):
        sim.run(torch.rand(1, 3, 32, 32), record=["nope"])


def test_frames_encoding_and_streaming_equivalence():
    model = tiny_ee(time_steps=4, encoding="frames")
    graph = trace(model, (32, 32))
    x = torch.rand(1, 4, 3, 32, 32)
    with record_neurons(model) as rec:
        model(x)
    _assert_spike_exact(RefFloat(graph).run(x, record="neurons"), rec, [n.name for n in graph.of_type(LIF)])


# --- property test over random configs -------------------------------------------------------
BLOCKS = ["BasicBlock_2", "BasicBlock_ms", "Concat_res2", "ConcatBlock_ms", "Conv", "BasicBlock_1"]


@st.composite
def random_configs(draw):
    c = draw(st.sampled_from([8, 16]))
    stem_s = draw(st.sampled_from([1, 2]))
    rows = [[-1, 1, draw(st.sampled_from(["Conv_1", "Conv_2"])), [c, draw(st.sampled_from([3, 7])), stem_s]]]
    chans, strides, total = [c], [stem_s], stem_s
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(BLOCKS))
        s = draw(st.sampled_from([1, 2])) if total < 8 else 1
        if kind in ("Concat_res2", "ConcatBlock_ms"):
            c2 = c + draw(st.sampled_from([8, 16]))
            row = [-1, 1, kind, [c2, draw(st.sampled_from([1, 3])), s]]
        elif kind == "Conv":
            c2, s = draw(st.sampled_from([8, 16, 24])), 1
            row = [-1, 1, kind, [c2, draw(st.sampled_from([1, 3])), 1]]
        elif kind == "BasicBlock_1":
            c2 = draw(st.sampled_from([8, 16]))
            row = [-1, 1, kind, [c2, s]]
        else:
            c2 = draw(st.sampled_from([c, 8, 16, 24]))
            n = draw(st.sampled_from([1, 2])) if (c2 == c and s == 1) else 1
            row = [-1, n, kind, [c2, draw(st.sampled_from([1, 3])), s]]
        rows.append(row)
        c, total = c2, total * s
        chans.append(c)
        strides.append(total)
    earlier = draw(st.integers(0, len(rows) - 1))
    if draw(st.booleans()) and strides[earlier] * 2 == total and total > 1:
        pass  # an upsample+concat path below needs an earlier layer at half the current stride
    ups = [i for i in range(len(rows)) if strides[i] * 2 == total]
    if ups and draw(st.booleans()):
        rows.append([-1, 1, "Sample", ["None", 2, "nearest"]])
        rows.append([[-1, ups[-1]], 1, "Concat", [2]])
        rows.append([-1, 1, "BasicBlock_ms", [16, 3, 1]])
        total //= 2
    detect = [len(rows) - 1, earlier]
    cfg = {"nc": 2, "anchors": GEN1_ANCHORS, "backbone": rows, "head": [[detect, 1, "Detect", ["nc", "anchors"]]]}
    size = max(total, 8) * draw(st.sampled_from([1, 2]))
    return cfg, size, draw(st.integers(1, 4)), draw(st.sampled_from(["direct", "frames"])), draw(st.integers(0, 10**6))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_configs())
def test_random_configs_spike_exact_float64(case):
    """float64 on both sides: no membrane sits within rounding of V_th, so we demand zero mismatches."""
    cfg, size, T, encoding, seed = case
    torch.manual_seed(seed)
    model = randomize_bn(EMSYOLO(cfg, T, encoding), seed).double()
    graph = trace(model, (size, size))
    x = torch.rand((1, 3, size, size) if encoding == "direct" else (1, T, 3, size, size), dtype=torch.float64)
    with record_neurons(model) as rec:
        pred, _ = model.predict(x)
    names = [n.name for n in graph.of_type(LIF)]
    for g in (graph, run_flow(graph, "simplify")):  # unfolded and folded/flattened IR
        out = RefFloat(g, torch.float64).run(x, record=names)
        _assert_spike_exact(out, rec, names)
        torch.testing.assert_close(out.outputs[g.outputs[-1]], pred, rtol=1e-9, atol=1e-9)


def test_per_step_graph_outputs_are_returned_over_time():
    graph = trace(tiny_ee(), (32, 32))
    g = graph.copy()
    g.outputs = [*g.outputs, "model.1.residual_function.0"]
    out = RefFloat(g).run(torch.rand(2, 3, 32, 32), time_steps=3)
    assert out.outputs["model.1.residual_function.0"].shape == (3, 2, *g.shape("model.1.residual_function.0"))


def test_shipped_checkpoint_spike_exact_on_validation_scenes():
    """The shipped model at its own input size and T, on synthetic validation scenes."""
    from emsdeploy.checkpoint import load_checkpoint
    from emsdeploy.models import DEFAULT_CHECKPOINT
    from emsdeploy.models.data import dataset_from_recipe

    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    model = ckpt.build()
    graph = trace(model, (128, 128))
    val = dataset_from_recipe(ckpt.meta["data"], "val")
    x = torch.stack([val[i].x for i in range(2)])
    with record_neurons(model) as rec:
        pred, _ = model.predict(x)
    out = RefFloat(graph).run(x, record="neurons")
    names = [n.name for n in graph.of_type(LIF)]
    _assert_spike_exact(out, rec, names)
    assert 0.02 < float(torch.cat([rec[n].flatten() for n in names]).mean()) < 0.5  # neither silent nor saturated
    torch.testing.assert_close(out.outputs[graph.outputs[-1]], pred, rtol=1e-5, atol=1e-3)


def test_a_numpy_input_runs_as_its_tensor():
    g = Graph({"time_steps": 2})
    g.add("input", Input((1, 4, 4)), [])
    g.add("conv", Conv2d(np.full((1, 1, 1, 1), 0.75, np.float32)), ["input"])
    g.add("lif", LIF(), ["conv"])
    g.add("conv2", Conv2d(np.ones((1, 1, 1, 1), np.float32)), ["lif"])
    g.add("readout", Readout(), ["conv2"])
    g.outputs = ["readout"]
    x = np.random.default_rng(0).random((2, 1, 4, 4), dtype=np.float32)
    sim = RefFloat(g.validate())
    a, b = sim.run(x[::-1]), sim.run(torch.from_numpy(x[::-1].copy()))  # a view numpy cannot share
    assert torch.equal(a.outputs["readout"], b.outputs["readout"])
