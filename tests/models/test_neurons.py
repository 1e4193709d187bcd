"""LIF and SiLU-neuron semantics (DESIGN.md §3), pinned by hand trajectories and the official unit fixture."""

import numpy as np
import pytest
import torch

from emsdeploy.models import LIF, SiLUNeuron, spike_fn


def _lif(currents, tau=0.25, v_th=0.5):
    x = torch.tensor(currents, dtype=torch.float32).view(-1, 1)
    return LIF(tau, v_th)(x).view(-1).tolist()


def test_lif_recurrence_by_hand():
    # U: 0.3 → 0.075+0.3=0.375 → 0.09375+0.5=0.59375 (spike) → 0+0.1=0.1 (hard reset) → 0.025+0.6=0.625 (spike)
    assert _lif([0.3, 0.3, 0.5, 0.1, 0.6]) == [0, 0, 1, 0, 1]


def test_threshold_is_strict():
    assert _lif([0.5, 0.5]) == [0, 1]  # U = 0.5 (no spike), then 0.125 + 0.5 = 0.625
    assert _lif([0.25, 0.4375]) == [0, 0]  # 0.0625 + 0.4375 = 0.5 exactly: still no spike


def test_hard_reset_and_tau_and_vth_are_parameters():
    assert _lif([1.0, 0.0, 0.0], tau=0.9) == [1, 0, 0]  # reset to 0, so the leak keeps nothing
    assert _lif([0.4, 0.4], tau=0.5, v_th=0.55) == [0, 1]  # 0.2 + 0.4 = 0.6 > 0.55
    assert _lif([0.4, 0.4], tau=0.25, v_th=0.55) == [0, 0]  # 0.1 + 0.4 = 0.5


def test_time_steps_come_from_the_input():
    for T in (1, 3, 7):
        assert LIF()(torch.ones(T, 2, 3)).shape == (T, 2, 3)


def test_surrogate_gradient_is_a_rectangle_of_width_a():
    u = torch.tensor([-0.5, -0.01, 0.01, 0.25, 0.5, 0.75, 0.99, 1.01, 1.5], requires_grad=True)
    spike_fn(u, 0.5, 1.0).sum().backward()
    assert u.grad.tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]
    u2 = u.detach().clone().requires_grad_(True)
    spike_fn(u2, 0.5, 0.5).sum().backward()  # a = 0.5: height 2 on |u - 0.5| < 0.25
    assert u2.grad.tolist() == [0, 0, 0, 0, 2, 0, 0, 0, 0]


def test_reset_is_detached_from_the_gradient():
    x = torch.tensor([[0.8], [0.3]], requires_grad=True)
    LIF()(x)[1].sum().backward()
    # S[1] depends on U[1] = 0.25·U[0]·(1 − S[0]) + x[1]; S[0] = 1, and d(1 − S[0]) is detached,
    # so the only path to x[0] would be through U[0]·(1 − S[0]) = 0 → zero gradient.
    assert x.grad[0].item() == 0.0
    assert x.grad[1].item() == 1.0  # |U[1] − 0.5| = 0.2 < 0.5


def test_official_lif_unit_fixture(lif_unit):
    npz = lif_unit["npz"]
    for cur, spk in (("current_dyadic", "spike_dyadic"), ("current_float", "spike_float")):
        out = LIF()(torch.from_numpy(npz[cur])).numpy().astype(np.uint8)
        assert (out == npz[spk]).all(), f"{spk}: {(out != npz[spk]).sum()} mismatches"


def test_ge_threshold_would_fail_the_unit_fixture(lif_unit):
    """The fixture really separates > from >=: a >= neuron is caught."""
    x = torch.from_numpy(lif_unit["npz"]["current_dyadic"])
    u, s, wrong = x[0], (x[0] >= 0.5).float(), [(x[0] >= 0.5).float()]
    for t in range(1, x.shape[0]):
        u = u * 0.25 * (1 - s) + x[t]
        s = (u >= 0.5).float()
        wrong.append(s)
    assert (torch.stack(wrong).numpy().astype(np.uint8) != lif_unit["npz"]["spike_dyadic"]).sum() > 0


@pytest.mark.parametrize("inplace,key", [(True, "silu_inplace"), (False, "silu_noinplace")])
def test_silu_neuron_recurrence(lif_unit, inplace, key):
    npz = lif_unit["npz"]
    out = SiLUNeuron(0.25, inplace=inplace)(torch.from_numpy(npz["current_float"])).numpy()
    np.testing.assert_allclose(out, npz[key], rtol=1e-5, atol=1e-6)


def test_silu_recurrences_by_hand():
    x = torch.tensor([[1.0], [0.5]])
    silu = torch.nn.functional.silu
    s0 = silu(torch.tensor(1.0))
    inplace = SiLUNeuron(0.25, inplace=True)(x)
    noinplace = SiLUNeuron(0.25, inplace=False)(x)
    assert torch.isclose(inplace[1, 0], silu(s0 * 0.25 * (1 - s0) + 0.5))
    assert torch.isclose(noinplace[1, 0], silu(1.0 * 0.25 * (1 - s0) + 0.5))
