"""The LIF mapping: NIR's parameters, stepped by the stated discretisation, are EMS-YOLO's LIF."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emsdeploy.errors import ExportError
from emsdeploy.exporters.nir import NeuronParams, ems_from_nir, nir_from_ems
from emsdeploy.exporters.nir.neurons import GAIN_RTOL
from tests.tolerances import FLOAT64_REFORMED


def ems_run(current: np.ndarray, tau: float, v_th: float) -> tuple[np.ndarray, np.ndarray]:
    """DESIGN.md §3: U[t] = τ·U[t−1]·(1 − S[t−1]) + I[t], S = 1[U > V_th]."""
    u_prev = s_prev = 0.0
    us, ss = [], []
    for i in current:
        u = tau * u_prev * (1.0 - s_prev) + i
        s = float(u > v_th)
        us.append(u)
        ss.append(s)
        u_prev, s_prev = u, s
    return np.array(us), np.array(ss)


def nir_run(current: np.ndarray, p: NeuronParams, discretization: str, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """NIR's LIF/IF stepped as the metadata says: v[t] from v⁺[t−1], strict threshold, hard reset."""
    v_plus = 0.0
    vs, zs = [], []
    for i in current:
        if p.model == "IF":
            v = v_plus + dt * p.r * i
        elif discretization == "euler":
            v = v_plus + (dt / p.tau) * (p.v_leak - v_plus + p.r * i)
        else:
            a = math.exp(-dt / p.tau)
            v = a * v_plus + (1.0 - a) * (p.v_leak + p.r * i)
        z = float(v > p.v_threshold)
        vs.append(v)
        zs.append(z)
        v_plus = p.v_reset if z else v
    return np.array(vs), np.array(zs)


def test_hand_computed_trajectory():
    """τ = 0.25, V_th = 0.5: U = 0.3, 0.375, 0.39375, 0.6984375 (spike), then 0 + 0.2."""
    p = nir_from_ems(0.25, 0.5)
    assert p == NeuronParams("LIF", 4 / 3, 4 / 3, 0.0, 0.5, 0.0)
    v, z = nir_run(np.array([0.3, 0.3, 0.3, 0.6, 0.2]), p, "euler", 1.0)
    np.testing.assert_allclose(v, [0.3, 0.375, 0.39375, 0.6984375, 0.2], rtol=1e-15)
    np.testing.assert_array_equal(z, [0, 0, 0, 1, 0])


@pytest.mark.parametrize(
    ("tau", "discretization"),
    [(tau, d) for d in ("euler", "exact") for tau in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0) if (d, tau) != ("exact", 0.0)],
)
@pytest.mark.parametrize("dt", [1.0, 1e-3])
def test_nir_parameters_run_the_ems_lif(tau, discretization, dt):
    """The same spikes, step for step, and membranes within float64 rounding; any dt.
    (τ = 0 has no exact-discretisation form: test_exact_refuses_tau_zero.)"""
    rng = np.random.default_rng(0)
    current = rng.uniform(-0.2, 0.6, 200)
    p = nir_from_ems(tau, 0.5, discretization, dt)
    assert p.model == ("IF" if tau == 1.0 else "LIF")
    u, s = ems_run(current, tau, 0.5)
    v, z = nir_run(current, p, discretization, dt)
    np.testing.assert_array_equal(z, s)
    np.testing.assert_allclose(v, u, **FLOAT64_REFORMED)
    assert 0 < s.sum() < len(s)


def test_threshold_is_strict():
    """A membrane exactly at V_th does not spike (EMS-YOLO and NIR's docstring both use >)."""
    v, z = nir_run(np.array([0.5, 0.0]), nir_from_ems(0.25, 0.5), "euler", 1.0)
    assert v[0] == 0.5 and z[0] == 0


@pytest.mark.parametrize("discretization", ["euler", "exact"])
def test_parameters_round_trip(discretization):
    for tau in np.linspace(0.01, 0.99, 199):
        back_tau, v_th, gain = ems_from_nir(nir_from_ems(float(tau), 0.3, discretization), discretization, 1.0)
        assert abs(back_tau - tau) <= 1e-15 and v_th == 0.3
        assert abs(gain - 1.0) <= GAIN_RTOL
    assert ems_from_nir(nir_from_ems(1.0, 0.3), discretization, 1.0) == (1.0, 0.3, 1.0)


def test_exact_refuses_tau_zero():
    with pytest.raises(ExportError, match="leak factor 0 has no exact-discretisation time constant.*euler"):
        nir_from_ems(0.0, 0.5, "exact")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (NeuronParams("LIF", 2.0, 2.0, 0.1, 0.5), "v_leak = 0.1"),
        (NeuronParams("LIF", 2.0, 2.0, 0.0, 0.5, -0.2), "v_reset = -0.2"),
        (NeuronParams("LIF", 0.5, 2.0, 0.0, 0.5), "forward Euler overshoots"),
        (NeuronParams("LIF", 0.0, 2.0, 0.0, 0.5), "must be positive"),
        (NeuronParams("CubaLIF", 2.0, 2.0, 0.0, 0.5), "supported: LIF, IF"),
    ],
)
def test_inverse_refuses_other_neurons(params, message):
    with pytest.raises(ExportError, match=message):
        ems_from_nir(params, "euler", 1.0)


def test_bad_settings():
    with pytest.raises(ExportError, match="unknown discretization 'rk4'; supported: euler, exact"):
        nir_from_ems(0.25, 0.5, "rk4")
    with pytest.raises(ExportError, match="dt must be a positive finite number"):
        nir_from_ems(0.25, 0.5, "euler", 0.0)
    with pytest.raises(ExportError, match=r"must lie in \[0, 1\]"):
        nir_from_ems(1.5, 0.5)
