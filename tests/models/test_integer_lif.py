"""SpikeYOLO's I-LIF against the official ``mem_update``: rounding ties, soft reset, decay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emsdeploy.errors import IRValidationError
from emsdeploy.ir import IntegerLIF as IntegerLIFOp
from emsdeploy.ir import Kind
from models import IntegerLIF


def _run(current: np.ndarray) -> np.ndarray:
    return IntegerLIF()(torch.from_numpy(current)).numpy()


def test_matches_official_at_t4_and_t1(ilif_unit):
    npz = ilif_unit["npz"]
    current = npz["current"]
    spikes4 = _run(current)
    assert spikes4.dtype == np.float32 and set(np.unique(spikes4)) <= {0, 1, 2, 3, 4}
    assert int((spikes4.astype(np.uint8) != npz["spike_T4"]).sum()) == 0
    assert int((_run(current[:1]).astype(np.uint8) != npz["spike_T1"]).sum()) == 0
    assert int(spikes4.sum()) == ilif_unit["info"]["total_spike_sum_T4"]


@pytest.mark.parametrize(
    "case",
    [
        "half_values_T1",
        "above_D",
        "negative",
        "soft_reset_decay",
        "carry",
        "big_then_zero",
        "exact_half_via_decay",
        "half_even_1p5",
    ],
)
def test_hand_cases(ilif_unit, case):
    spec = ilif_unit["info"]["cases"][case]
    current = torch.tensor(spec["current"], dtype=torch.float32).reshape(-1, 1)
    assert IntegerLIF()(current).flatten().tolist() == spec["spikes"]


def test_round_half_up_would_be_caught(ilif_unit):
    """The fixture tells half-even from half-up: a neuron rounding half up differs in 22 spikes."""
    npz = ilif_unit["npz"]
    u = npz["membrane_T4"].astype(np.float64)
    half_up = np.floor(np.clip(u, 0, 4) + 0.5)
    assert int((half_up != npz["spike_T4"]).sum()) == ilif_unit["info"]["n_wrong_if_round_half_up"]


def test_gradient_is_straight_through_inside_zero_to_d():
    u = torch.tensor([[-0.5, 0.3, 2.6, 3.9, 4.5]], requires_grad=True)
    IntegerLIF()(u).sum().backward()
    assert u.grad.tolist() == [[0.0, 1.0, 1.0, 1.0, 0.0]]


def test_reset_is_detached_as_in_the_official_mem_update():
    """``U[1] = (U[0] − S[0].detach())·β + X[1]``: dS[1]/dX[0] is β through the leak only."""
    x = torch.tensor([[2.0], [1.0]], requires_grad=True)
    IntegerLIF()(x).sum().backward()
    assert x.grad.flatten().tolist() == [1.25, 1.0]  # 1 + 0.25; without the detach 1 + 0.25·(1 − 1)


def test_ir_op_emits_integer_spikes_and_checks_its_parameters():
    op = IntegerLIFOp()
    assert (op.decay, op.levels) == (0.25, 4)
    assert op.output_kind([Kind.CURRENT]) is Kind.INTEGER
    with pytest.raises(IRValidationError, match="levels"):
        IntegerLIFOp(levels=0)
    with pytest.raises(IRValidationError, match="decay"):
        IntegerLIFOp(decay=1.5)


def test_ref_float_runs_the_ir_neuron_as_the_torch_module(ilif_unit):
    from emsdeploy.ir import Conv2d, Graph, Input, Readout
    from simulators.ref_float import RefFloat

    current = ilif_unit["npz"]["current"]  # [T, B, C, H, W]
    g = Graph({"time_steps": current.shape[0]})
    g.add("input", Input((16, 8, 8), "frames"), [])
    g.add("ilif", IntegerLIFOp(), ["input"])
    g.add("conv", Conv2d(np.eye(16, dtype=np.float32).reshape(16, 16, 1, 1)), ["ilif"])
    g.add("readout", Readout(), ["conv"])
    g.outputs = ["readout"]
    trace = RefFloat(g.validate()).run(torch.from_numpy(current).transpose(0, 1), record="all")
    spikes = trace.spikes("ilif").numpy().astype(np.uint8)
    assert int((spikes != ilif_unit["npz"]["spike_T4"]).sum()) == 0
