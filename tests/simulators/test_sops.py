"""Exact SOP counting (simulators/sops.py) against brute force: every event, every weight it reaches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from emsdeploy.errors import SimulationError
from emsdeploy.ir import LIF, OPS, Affine, Conv2d, Graph, Input, Readout, Upsample
from emsdeploy.simulators.sops import (
    FIXED_POINT_MODULE,
    RULES,
    SOPCounter,
    axis_fanout,
    conv_dense_sops,
    conv_fanout,
    conv_flops,
    count_sops,
    graph_flops,
)
from tests.helpers import one_lif_by_hand


# --- brute force ---------------------------------------------------------------------------
def brute_force_sops(x: np.ndarray, op: Conv2d) -> int:
    """Enumerate every nonzero input element and every weight it is applied to.

    Input (c, y, x) meets weight (o, c mod C_in/g, ky, kx) of every output channel o of its group
    when an output position (oy, ox) inside the output reads it through that tap:
    oy·sh − ph + ky·dh = y (and the same for columns).
    """
    c_in = x.shape[0]
    c_out, ho, wo = op.output_shape([x.shape])
    kh, kw = op.kernel_size
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    per_group_in, per_group_out = c_in // op.groups, c_out // op.groups
    count = 0
    for c, yy, xx in zip(*np.nonzero(x)):
        group = c // per_group_in
        for _o in range(group * per_group_out, (group + 1) * per_group_out):
            for ky in range(kh):
                oy, ry = divmod(yy + ph - ky * dh, sh)
                if ry or not 0 <= oy < ho:
                    continue
                for kx in range(kw):
                    ox, rx = divmod(xx + pw - kx * dw, sw)
                    if not rx and 0 <= ox < wo:
                        count += 1
    return count


def _conv(c_in, c_out, k, stride, padding, dilation, groups, seed=0):
    g = torch.Generator().manual_seed(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    weight = torch.randn(c_out, c_in // groups, kh, kw, generator=g).numpy()
    weight[weight > 1.0] = 0.0  # some zero weights: they count, like any other
    return Conv2d(weight, None, stride, padding, dilation, groups)


def _spike_graph(op: Conv2d, shape) -> Graph:
    g = Graph({"time_steps": 3})
    g.add("input", Input(shape, "frames"))
    g.add("lif", LIF(0.25, 0.5), ["input"])
    g.add("conv", op, ["lif"])
    g.add("readout", Readout(), ["conv"])
    g.outputs = ["readout"]
    return g.validate()


def _graded_graph(op: Conv2d, shape) -> Graph:
    g = Graph({"time_steps": 2})
    g.add("input", Input(shape, "frames"))
    g.add("conv", op, ["input"])
    g.add("readout", Readout(), ["conv"])
    g.outputs = ["readout"]
    return g.validate()


CASES = [
    # c_in, c_out, (H, W), kernel, stride, padding, dilation, groups
    (3, 4, (7, 9), 3, 1, 1, 1, 1),
    (4, 6, (8, 8), 3, 2, 1, 1, 2),
    (4, 8, (9, 7), 3, 2, 0, 1, 4),
    (2, 4, (10, 10), 5, 3, 2, 1, 1),
    (3, 3, (6, 6), 1, 1, 0, 1, 3),
    (2, 2, (9, 9), 3, 1, 2, 2, 1),
    (3, 4, (11, 11), 7, 2, 3, 1, 1),
    (2, 4, (6, 9), (1, 3), (2, 1), (0, 1), 1, 2),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-k{c[3]}-s{c[4]}-p{c[5]}-d{c[6]}-g{c[7]}")
def test_spike_inputs_match_brute_force(case):
    c_in, c_out, hw, k, s, p, d, groups = case
    op = _conv(c_in, c_out, k, s, p, d, groups)
    graph = _spike_graph(op, (c_in, *hw))
    x = torch.rand(2, 3, c_in, *hw)
    counts = count_sops(graph, [x])
    spikes = _lif_spikes(graph, x)  # [T, B, C, H, W]
    row = counts.synapses[0]
    assert row.input_kind.value == "spike" and row.is_ac
    for t in range(3):
        want = sum(brute_force_sops(spikes[t, b], op) for b in range(2))
        assert row.sops[t] == want, f"step {t}"
        assert row.nonzero[t] == int((spikes[t] != 0).sum())
    assert counts.samples == 2 and counts.time_steps == 3


def _lif_spikes(graph: Graph, x: torch.Tensor) -> np.ndarray:
    from emsdeploy.simulators import RefFloat

    return RefFloat(graph).run(x, record=["lif"]).records["lif"]["s"].numpy()


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_graded_inputs_count_macs_over_nonzero_inputs(case):
    c_in, c_out, hw, k, s, p, d, groups = case
    op = _conv(c_in, c_out, k, s, p, d, groups)
    graph = _graded_graph(op, (c_in, *hw))
    x = torch.rand(1, 2, c_in, *hw)
    x[x < 0.4] = 0.0  # zeros cost nothing, graded nonzero values one MAC per weight reached
    row = count_sops(graph, [x]).synapses[0]
    assert row.input_kind.value == "analog" and not row.is_ac
    for t in range(2):
        assert row.sops[t] == brute_force_sops(x[0, t].numpy(), op)
        assert row.nonzero[t] == int((x[0, t] != 0).sum())


@settings(max_examples=15, deadline=None)
@given(
    c=st.sampled_from([(2, 2, 1), (2, 4, 2), (4, 4, 4), (3, 6, 1)]),
    hw=st.tuples(st.integers(3, 9), st.integers(3, 9)),
    k=st.tuples(st.sampled_from([1, 2, 3, 5]), st.sampled_from([1, 3])),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    d=st.sampled_from([1, 2]),
    seed=st.integers(0, 1000),
)
def test_random_layers_match_brute_force(c, hw, k, s, p, d, seed):
    c_in, c_out, groups = c
    if (hw[0] + 2 * p[0] - d * (k[0] - 1)) < 1 or (hw[1] + 2 * p[1] - d * (k[1] - 1)) < 1:
        return  # empty output
    op = _conv(c_in, c_out, k, s, p, d, groups, seed)
    graph = _graded_graph(op, (c_in, *hw))
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(1, 2, c_in, *hw, generator=gen) < 0.3).float() * 0.7
    row = count_sops(graph, [x]).synapses[0]
    for t in range(2):
        assert row.sops[t] == brute_force_sops(x[0, t].numpy(), op)


def test_fanout_map_equals_transposed_conv_of_ones():
    """The separable map equals the connection map of a transposed conv with an all-ones kernel."""
    for c_in, c_out, hw, k, s, p, d, groups in CASES:
        op = _conv(c_in, c_out, k, s, p, d, groups)
        shape = (c_in, *hw)
        _, ho, wo = op.output_shape([shape])
        kh, kw = op.kernel_size
        base = [
            (o - 1) * st_ - 2 * pd + dl * (kk - 1) + 1
            for o, st_, pd, dl, kk in zip((ho, wo), op.stride, op.padding, op.dilation, (kh, kw))
        ]
        ones = F.conv_transpose2d(
            torch.ones(1, 1, ho, wo, dtype=torch.float64),
            torch.ones(1, 1, kh, kw, dtype=torch.float64),
            stride=op.stride,
            padding=op.padding,
            output_padding=tuple(n - b for n, b in zip(hw, base)),  # rows read by the last windows only
            dilation=op.dilation,
        )[0, 0]
        full = ones.numpy().astype(np.int64)
        np.testing.assert_array_equal(conv_fanout(op, shape), full)
        assert conv_dense_sops(op, shape) == brute_force_sops(np.ones(shape), op)


def test_axis_fanout_by_hand():
    # 5 inputs, k3 s2 p1 -> outputs read (-1,0,1), (1,2,3), (3,4,5): the padded taps count nothing.
    assert axis_fanout(5, 3, 3, 2, 1).tolist() == [1, 2, 1, 2, 1]
    assert axis_fanout(4, 4, 3, 1, 1).tolist() == [2, 3, 3, 2]


def test_dense_counts_match_neurobench_dense():
    """ENERGY.md §3: NeuroBench "Dense" of Conv2d(2->4, k3, pad 1) is 3872 for one 8x8 input and
    33856 for a batch of two 16x16 inputs (padded taps excluded); the papers' FLOPs are 4608 and 36864."""
    op = _conv(2, 4, 3, 1, 1, 1, 1)
    assert [conv_dense_sops(op, (2, 8, 8)), 2 * conv_dense_sops(op, (2, 16, 16))] == [3872, 33856]
    assert [conv_flops(op, (2, 8, 8)), 2 * conv_flops(op, (2, 16, 16))] == [4608, 36864]


def test_flops_are_the_papers_dense_macs():
    op = _conv(4, 6, 3, 2, 1, 1, 2)
    assert conv_flops(op, (4, 8, 8)) == 3 * 3 * 2 * 6 * 4 * 4  # padded taps included, bias not


def test_resnet34_cat_at_640_matches_the_published_mac_count():
    """OFFICIAL_EMSYOLO.md §4.2: first conv 0.963 G, total 33.00 G MACs per step (shapes only)."""
    from emsdeploy.models import build_model
    from emsdeploy.tracer import trace

    graph = trace(build_model("resnet34-cat", 4, "direct"), (640, 640))
    flops = graph_flops(graph)
    first = next(iter(flops.values()))
    assert first == 7 * 7 * 3 * 64 * 320 * 320  # 0.963 G
    assert round(sum(flops.values()) / 1e9, 2) == 33.00


# --- neurons --------------------------------------------------------------------------------
def test_neuron_updates_and_active_updates_by_hand():
    g, x = one_lif_by_hand()  # its docstring says which neuron gets what
    counts = count_sops(g, [x])
    (lif,) = counts.neurons
    assert lif.size == 4 and lif.fanin == 1 and lif.spiking
    assert lif.active.tolist() == [2, 2, 2]
    assert lif.nonzero_out.tolist() == [1, 0, 0]


def test_an_input_that_cancels_still_makes_the_update_active_and_fanin_adds_count():
    g = Graph({"time_steps": 2})
    g.add("input", Input((1, 2, 2), "frames"))
    g.add("neg", Conv2d(-np.ones((1, 1, 1, 1), np.float32)), ["input"])
    g.add("lif", LIF(0.25, 0.5), ["input", "neg"])  # I = x - x = 0, yet both inputs arrived
    g.add("conv", Conv2d(np.ones((1, 1, 1, 1), np.float32)), ["lif"])
    g.add("readout", Readout(), ["conv"])
    g.outputs = ["readout"]
    x = torch.tensor([1.0, 0.0, 2.0, 0.0]).view(1, 1, 1, 2, 2).repeat(1, 2, 1, 1, 1)
    counts = count_sops(g.validate(), [x])
    (lif,) = counts.neurons
    assert lif.active.tolist() == [2, 2]
    fanin = [e for e in counts.elementwise if e.name == "lif"]
    assert fanin and fanin[0].ops_per_step == 4  # (2 inputs - 1) add per neuron


# --- rules ----------------------------------------------------------------------------------
def test_every_float_ir_op_has_a_counting_rule():
    """Fixed-point ops (the quantize pass's output) are counted through the float graph instead."""
    missing = {cls.__name__ for cls in OPS.values() if cls not in RULES and cls.__module__ != FIXED_POINT_MODULE}
    assert not missing


def test_an_op_without_rule_is_an_error(monkeypatch):
    g = Graph({"time_steps": 1})
    g.add("input", Input((1, 2, 2), "frames"))
    g.add("up", Upsample(2), ["input"])
    g.add("conv", Conv2d(np.ones((1, 1, 1, 1), np.float32)), ["up"])
    g.add("readout", Readout(), ["conv"])
    g.outputs = ["readout"]
    monkeypatch.delitem(RULES, Upsample)
    with pytest.raises(SimulationError, match=r"up \(Upsample\): no SOP counting rule"):
        SOPCounter(g.validate())


def test_an_affine_that_cannot_fold_is_an_error():
    g = Graph({"time_steps": 1})
    g.add("input", Input((1, 2, 2), "frames"))
    g.add("bn", Affine(np.ones(1), np.zeros(1)), ["input"])
    g.add("readout", Readout(), ["bn"])
    g.outputs = ["readout"]
    with pytest.raises(SimulationError, match=r"bn \(Affine\): no counting rule"):
        SOPCounter(g.validate())


# --- streaming ------------------------------------------------------------------------------
def test_batches_stream_and_results_are_snapshots():
    op = _conv(2, 4, 3, 2, 1, 1, 1)
    graph = _spike_graph(op, (2, 8, 8))
    x = torch.rand(2, 3, 2, 8, 8)
    both = count_sops(graph, [x])
    counter = SOPCounter(graph)
    counter.run(x[:1])
    first = counter.counts()
    counter.run(x[1:])
    split = counter.counts()
    assert np.array_equal(both.synapses[0].sops, split.synapses[0].sops)
    assert first.synapses[0].sops.sum() < split.synapses[0].sops.sum()  # the snapshot did not move
    assert split.samples == 2
    with pytest.raises(SimulationError, match="T = 3"):
        counter.run(torch.rand(1, 4, 2, 8, 8))


def test_nothing_counted_is_an_error():
    with pytest.raises(SimulationError, match="nothing counted"):
        SOPCounter(_spike_graph(_conv(2, 2, 3, 1, 1, 1, 1), (2, 4, 4))).counts()


def test_observer_sees_every_step_and_changes_nothing():
    from emsdeploy.simulators import RefFloat

    graph = _spike_graph(_conv(2, 4, 3, 1, 1, 1, 1), (2, 6, 6))
    x = torch.rand(1, 3, 2, 6, 6)
    seen: list[tuple[int, str]] = []
    sim = RefFloat(graph)
    plain = sim.run(x)
    observed = sim.run(x, observer=lambda t, node, xs, y, state: seen.append((t, node.name)))
    assert torch.equal(plain.outputs["readout"], observed.outputs["readout"])
    assert seen == [(t, n) for t in range(3) for n in ("lif", "conv", "readout")]
