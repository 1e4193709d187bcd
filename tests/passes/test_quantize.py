"""quantize: float IR -> Loihi fixed point, within the profile's widths, with a per-population report."""

import dataclasses

import numpy as np
import pytest
import torch

from emsdeploy.errors import PassError, QuantizationError
from emsdeploy.ir import LIF, read_ir, write_ir
from emsdeploy.ir.ops.loihi import (
    FixedMaxPool,
    FixedSiLU,
    HostConv,
    LoihiLIF,
    LoihiReadout,
    SynConv,
    SynSparse,
)
from emsdeploy.passes import run_flow
from emsdeploy.passes.quantize import QuantizeOptions, format_quant_report, quantize
from emsdeploy.profiles.loihi import load_profile
from emsdeploy.simulators import RefFloat
from emsdeploy.simulators.ref_fixed import RefFixed
from emsdeploy.tracer import trace
from tests.helpers import spike_mismatches, tiny_ee
from tests.loihi_cases import lowered, mixed_graph, simplified


@pytest.fixture(scope="module")
def mixed():
    g = simplified(mixed_graph(seed=0))
    return g, quantize(g)


def test_every_op_is_lowered(mixed):
    _, q = mixed
    types = {n.op.type_name for n in q}
    assert types == {
        "Input",
        "HostConv",
        "SynConv",
        "SynSparse",
        "LoihiLIF",
        "FixedMaxPool",
        "FixedSiLU",
        "LoihiReadout",
        "Decode",
    }
    assert q.attrs["quantized"] and q.attrs["loihi"]["weight_bits"] == 8
    assert q["pool"].meta["partition"] == "custom" and q["silu"].meta["partition"] == "custom"
    assert q["lif1<-input"].meta["partition"] == "host"


def test_values_fit_the_profile(mixed):
    _, q = mixed
    p = load_profile()
    lo, hi = p.weight_range
    seen = {type(n.op) for n in q}
    assert {SynConv, SynSparse, LoihiLIF, LoihiReadout} <= seen  # every branch below runs
    for n in q:
        op = n.op
        if isinstance(op, (SynConv, SynSparse)):
            assert lo <= op.weight_s8.min() and op.weight_s8.max() <= hi
            assert p.weight_exp_min <= op.weight_exp_s4 <= p.weight_exp_max
            if isinstance(op, SynConv):
                assert op.weight_exp_s4 >= 0  # Lava's Conv cannot shift right
        if isinstance(op, (LoihiLIF, LoihiReadout)):
            assert 0 <= op.vth_u17 <= p.vth_max and 0 <= op.dv_u12 <= p.dv_max and op.du_u12 == p.du_max
            assert p.bias_mant_range[0] <= op.bias_mant_s13.min() and op.bias_mant_s13.max() <= p.bias_mant_range[1]
            assert 0 <= op.bias_exp_u3 <= p.bias_exp_max
            assert np.log2(op.scale) == int(np.log2(op.scale))  # a power of two


def test_lif_parameters_follow_design_section_8(mixed):
    _, q = mixed
    lif = q["lif1"].op
    assert lif.du_u12 == 4095 and lif.dv_u12 == 3072  # tau 0.25: dv = 4096 (1 - tau)
    assert lif.vth_u17 == round(0.5 * lif.scale)  # exact at a power-of-two scale
    assert q["lif2"].op.dv_u12 == 2048  # tau 0.5
    ro = q["ro0"].op
    assert (ro.du_u12, ro.dv_u12, ro.vth_u17) == (4095, 0, (1 << 17) - 1)
    spool = q["spool"].op  # max-pool of spikes: LIF with threshold 0 behind an all-ones window
    assert spool.vth_u17 == 0 and spool.scale == 1.0
    win = q["spool<-lif4"].op
    assert isinstance(win, SynConv) and win.groups == 12 and np.all(win.weight_s8 == 1)


def test_one_scale_per_population_shared_by_its_groups(mixed):
    """Each group's integer weights, divided by the population's scale, give its float weights."""
    _, q = mixed
    for name in ("lif2", "lif4", "pool", "ro1"):
        pop = q[name].op
        for term in q[name].inputs:
            top = q[term].op
            rep = next(
                t
                for r in q.attrs["quantization"]["populations"]
                if r["name"] == name
                for t in r["terms"]
                if t["name"] == term
            )
            assert (
                rep["weight_error_max"]
                <= 2.0 ** (top.weight_exp_s4 if hasattr(top, "weight_exp_s4") else 0) / pop.scale
            )


def test_stem_conv_weights_dequantize(mixed):
    g, q = mixed
    host = q["lif1<-input"].op
    assert isinstance(host, HostConv)
    s = q["lif1"].op.scale
    w = host.weight_s24 / 2.0**host.shift_u5 / s * host.in_scale
    np.testing.assert_allclose(w, g["stem"].op.weight, atol=2e-6)


def test_graded_outputs_and_custom_populations(mixed):
    _, q = mixed
    pool, silu = q["pool"].op, q["silu"].op
    assert isinstance(pool, FixedMaxPool) and pool.kernel == 2 and pool.scale_out <= pool.scale
    assert isinstance(silu, FixedSiLU) and silu.inplace and silu.tau == 0.25
    assert isinstance(q["lif3<-pool"].op, SynSparse)  # graded spikes need Sparse's exponent


def test_report(mixed):
    _, q = mixed
    rep = q.attrs["quantization"]
    names = [r["name"] for r in rep["populations"]]
    assert {"lif1", "pool", "silu", "ro0", "ro1", "spool"} <= set(names)
    r = next(r for r in rep["populations"] if r["name"] == "lif4")
    assert {"scale", "limited_by", "vth_u17", "bias_exp_u3", "bias_error_max", "terms"} <= set(r)
    assert {"form", "weight_exp_s4", "mantissa_range", "effective_bits", "weights_zeroed"} <= set(r["terms"][0])
    assert rep["clips"] == []
    text = format_quant_report(q)
    assert "lif4" in text and "clips: 0" in text


def test_round_trip_through_the_ir_file(mixed, tmp_path):
    _, q = mixed
    from emsdeploy.passes.align_delays import align_delays

    a = align_delays(q)
    b = read_ir(write_ir(a, tmp_path / "q.emsir"))
    assert a.same_as(b)


def test_errors_name_node_field_and_ranges():
    g = simplified(mixed_graph(seed=0))
    g.replace("lif1", op=LIF(0.0, 0.5))  # tau 0: dv = 4096 does not fit 12 bits
    with pytest.raises(QuantizationError, match=r"lif1: dv_u12 needs \[4096, 4096\] but u12 allows \[0, 4095\]"):
        quantize(g)
    q = quantize(g, QuantizeOptions(allow_clip=True))
    assert q["lif1"].op.dv_u12 == 4095
    clips = q.attrs["quantization"]["clips"]
    assert clips == [{"node": "lif1", "field": "dv_u12", "count": 1, "observed": [4096, 4096], "allowed": [0, 4095]}]


def test_preconditions():
    g = run_flow(mixed_graph(), "simplify")
    with pytest.raises(PassError, match="partition"):
        quantize(g)


def test_quantization_is_deterministic_and_pure(mixed):
    g, q = mixed
    again = quantize(g)
    assert q.same_as(again)
    assert "quantized" not in g.attrs


def _agreement(graph, x):
    q = lowered(graph)
    f = RefFloat(simplified(graph), torch.float64).run(x, record="neurons")
    n, m = spike_mismatches(f, RefFixed(q).run(x, record="all"))
    return 1 - m / n


def test_fixed_agrees_with_float_on_a_small_model():
    """Quantisation error stays small on a fresh res10-ee (cascades through ~20 layers)."""
    graph = trace(tiny_ee(3, seed=1, width=0.25), (32, 32))
    x = torch.rand(1, 3, 32, 32)
    assert _agreement(graph, x) > 0.97


def test_options_change_the_scale():
    g = simplified(mixed_graph(seed=0))
    q8 = quantize(g, QuantizeOptions(scale_bits_max=8))
    assert q8["lif1"].op.scale == 256.0
    assert dataclasses.asdict(QuantizeOptions())["scale_bits_max"] == 12


def test_readout_spike_convs_split_into_two_8bit_groups(mixed):
    """A readout's Conv group of spikes with e > 0 gets a second 8-bit group (the remainder at a
    finer exponent): together within half a unit of the finer exponent, and off with the option."""
    g, q = mixed
    splits = [n for n in q if "split_of" in n.meta]
    assert splits, "the fixture's readouts read spikes through convs with e > 0"
    for low in splits:
        hi = q[low.meta["split_of"]]
        assert isinstance(low.op, SynConv) and low.inputs == hi.inputs and low.name == hi.name + "@lo"
        assert 0 <= low.op.weight_exp_s4 < hi.op.weight_exp_s4 and np.abs(low.op.weight_s8).max() <= 127
        pop = next(n for n in q if low.name in n.inputs)
        assert isinstance(pop.op, LoihiReadout) and hi.name in pop.inputs
        rep = next(t for r in q.attrs["quantization"]["populations"] for t in r["terms"] if t["name"] == low.name)
        assert rep["weight_error_max"] <= 2.0 ** (low.op.weight_exp_s4 - 1) / pop.op.scale + 1e-12
    plain = quantize(g, QuantizeOptions(readout_split=False))
    assert not any("split_of" in n.meta for n in plain)
    assert {n.name for n in plain} == {n.name for n in q} - {n.name for n in splits}
