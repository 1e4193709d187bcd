"""SpikeYOLO's I-LIF in Loihi fixed point (LoihiIntegerLIF): exact where the float currents are
representable, flips reported where they are not (docs/spikeyolo.md, Fixed point)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emsdeploy.errors import IRValidationError, QuantizationError
from emsdeploy.exporters.lava import lower
from emsdeploy.ir import Conv2d, Graph, Input, IntegerLIF, Kind, Readout
from emsdeploy.ir.fixed_point import integer_lif_step, round_half_even_shift
from emsdeploy.ir.ops.loihi import LoihiIntegerLIF
from emsdeploy.passes.quantize import QuantizeOptions
from emsdeploy.simulators import RefFixed
from emsdeploy.simulators.ref_float import RefFloat
from emsdeploy.verify.quantization import compare_fixed_float


def _unit_graph(time_steps: int, decay: float = 0.25) -> Graph:
    """Input frames straight into an I-LIF (a host term: the identity), read by a readout."""
    g = Graph({"time_steps": time_steps})
    g.add("input", Input((16, 8, 8), "frames"), [])
    g.add("ilif", IntegerLIF(decay, 4), ["input"])
    g.add("conv", Conv2d(np.eye(16, dtype=np.float32).reshape(16, 16, 1, 1)), ["ilif"])
    g.add("readout", Readout(), ["conv"])
    g.outputs = ["readout"]
    return g.validate()


def _lowered(time_steps: int, input_scale: float = 16.0, decay: float = 0.25) -> tuple[Graph, Graph]:
    g = _unit_graph(time_steps, decay)
    return g, lower(g, options=QuantizeOptions(input_scale=input_scale))


@pytest.mark.parametrize("time_steps", [4, 1])
def test_ref_fixed_equals_the_official_neuron(ilif_unit, time_steps):
    """The fixture's currents are multiples of 1/16: quantized exactly (input_scale 16), so every
    spike (rounding ties, soft reset, decay) and the membrane are exact at T = 4 and T = 1."""
    npz = ilif_unit["npz"]
    g, q = _lowered(time_steps)
    op = q["ilif"].op
    assert isinstance(op, LoihiIntegerLIF) and op.decay_shift_u4 == 2 and op.frac_bits_u5 == 2 * (time_steps - 1)
    x = torch.from_numpy(npz["current"][:time_steps]).transpose(0, 1)  # [B, T, C, H, W]
    trace = RefFixed(q).run(x, record="all")
    spikes = trace.records["ilif"]["s"].numpy().astype(np.uint8)
    assert int((spikes != npz[f"spike_T{time_steps}"]).sum()) == 0
    assert spikes.max() == 4 and spikes.sum() > 1000
    v = trace.records["ilif"]["v"].numpy() / (op.scale * 2.0**op.frac_bits_u5)  # V counts 1/Q
    np.testing.assert_array_equal(v, npz["membrane_T4"][:time_steps].astype(np.float64))
    ref = RefFloat(g).run(x, record="all")
    np.testing.assert_array_equal(trace.outputs["readout"].numpy(), ref.outputs["readout"].numpy())


def test_hand_cases_round_half_to_even(ilif_unit):
    """The fixture's hand cases (its first 8 neurons) through the integer step alone."""
    op = LoihiIntegerLIF(np.zeros((1, 1, 1)), 4, 2, 6, 16.0)
    p = {"uv_bits": 24}
    for name, spec in ilif_unit["info"]["cases"].items():
        state, got = None, []
        for current in spec["current"]:
            s, state = integer_lif_step(op, np.full((1, 1, 1), int(current * 16)), state, p)
            got.append(int(s.item()))
        assert got == spec["spikes"], name


def test_round_half_even_shift_is_torch_round():
    c = np.arange(0, 5 * 64 + 1, dtype=np.int64)
    want = torch.round(torch.from_numpy(c).to(torch.float64) / 64).numpy().astype(np.int64)
    np.testing.assert_array_equal(round_half_even_shift(c, 6), want)
    np.testing.assert_array_equal(round_half_even_shift(c, 0), c)


def test_flips_are_reported_where_currents_are_not_representable():
    """Currents on a 1/1000 grid near the rounding edges: the host quantizes them to 1/16 steps,
    some spikes flip, and the fixed-vs-float report counts them (never hides them)."""
    g, q = _lowered(4)
    gen = torch.Generator().manual_seed(1)
    base = torch.randint(0, 5, (1, 4, 16, 8, 8), generator=gen).to(torch.float64) + 0.5
    x = base + (torch.randint(-30, 31, base.shape, generator=gen).to(torch.float64) / 1000)
    report = compare_fixed_float(g, q, x)
    assert report["mismatches"] > 0 and report["agreement"] < 1.0
    pop = next(p for p in report["populations"] if p["name"] == "ilif")
    assert pop["mismatches"] == report["mismatches"] and pop["first_divergent_step"] == 0
    # at the first step every flip is a current within half a host step (1/32) of a rounding edge
    fixed = RefFixed(q).run(x, record="all").records["ilif"]["s"][0, 0]
    flips = fixed != torch.round(torch.clamp(x[0, 0], 0, 4)).to(fixed.dtype)
    assert flips.any() and bool(((x[0, 0] - torch.floor(x[0, 0]) - 0.5).abs()[flips] <= 1 / 32).all())


def test_integer_spikes_are_read_like_spikes():
    """The group reading the I-LIF is a weight-shared Conv with e >= 0 whose source bound is D."""
    _, q = _lowered(4)
    assert q.kind("ilif") is Kind.INTEGER
    assert q["ilif"].meta["out_bound"] == 4
    assert type(q["readout<-ilif"].op).__name__ == "SynConv" and q["readout<-ilif"].op.weight_exp_s4 >= 0
    # spike-driven runs add a readout's bias once per step through a_in: whole a_in units
    assert q["readout"].op.bias_exp_u3 >= q.attrs["loihi"]["act_shift"]


def test_decay_must_be_a_shift_and_the_op_checks_its_fields():
    with pytest.raises(QuantizationError, match="ilif: IntegerLIF decay 0.3 is no power of two"):
        _lowered(4, decay=0.3)
    with pytest.raises(IRValidationError, match="power of two"):
        LoihiIntegerLIF(np.zeros((1, 1, 1)), scale=3.0)
    with pytest.raises(IRValidationError, match="levels"):
        LoihiIntegerLIF(np.zeros((1, 1, 1)), levels=0)
