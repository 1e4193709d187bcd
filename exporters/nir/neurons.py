"""EMS-YOLO's discrete LIF as NIR's continuous-time LIF: the one place where τ meets dt.

EMS-YOLO (DESIGN.md §3) runs, per step ``t`` with leak factor ``τ ∈ [0, 1]``::

    U[t] = τ · U[t−1] · (1 − S[t−1]) + I[t]        S[t] = 1[U[t] > V_th]

NIR 1.0 declares ``tau_m · dv/dt = (v_leak − v) + r · I`` with ``z = 1[v > v_threshold]`` and
``v ← v_reset`` after a spike, and leaves the discretisation to the backend. Two conventions
are in use, so the export states which one its numbers are for (graph metadata
``discretization``); both use ``dt`` = one model step, dimensionless (``time_unit = "step"``):

* ``"euler"`` (forward Euler, the default)::

      v[t] = v⁺[t−1] + (dt/tau_m) · (v_leak − v⁺[t−1] + r · I[t])

  matches EMS-YOLO with ``dt/tau_m = 1 − τ``, ``r = 1/(1 − τ)``, ``v_leak = 0``.

* ``"exact"`` (zero-order hold: ``v[t] = e^(−dt/tau_m) v⁺[t−1] + (1 − e^(−dt/tau_m)) · r · I[t]``)
  matches with ``tau_m = −dt / ln τ`` and the same ``r = 1/(1 − τ)``.

Here ``v⁺[t−1]`` is the membrane after the reset of step ``t−1`` (``v_reset = 0``: hard reset,
EMS-YOLO's ``(1 − S)`` factor), ``v⁺[−1] = 0``, and ``v_threshold = V_th`` compared strictly.
``τ = 1`` (no leak) is NIR's ``IF`` with ``r = 1/dt``. The same numbers in another time unit:
multiply ``dt`` and ``tau_m`` by the length of one step; ``r`` and the voltages do not change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from emsdeploy.errors import ExportError

__all__ = ["DISCRETIZATIONS", "GAIN_RTOL", "NeuronParams", "ems_from_nir", "nir_from_ems"]

DISCRETIZATIONS = ("euler", "exact")

# Writing 1/(1 − τ) and reading it back costs a few float64 roundings: (dt/tau_m)·r lands
# within a few 1e-16 of 1. A gain further from 1 than this is a different neuron model.
GAIN_RTOL = 1e-12


@dataclass(frozen=True)
class NeuronParams:
    """One population's NIR parameters (scalars; the exporter broadcasts them to the population).

    ``model`` is ``"LIF"`` (``tau``, ``r``, ``v_leak``, ``v_threshold``, ``v_reset``) or ``"IF"``
    (``r``, ``v_threshold``, ``v_reset``; ``tau`` and ``v_leak`` are ``None``).
    """

    model: str
    tau: float | None  # tau_m, in units of dt
    r: float
    v_leak: float | None
    v_threshold: float
    v_reset: float = 0.0


def _check(discretization: str, dt: float) -> None:
    if discretization not in DISCRETIZATIONS:
        raise ExportError(f"unknown discretization {discretization!r}; supported: {', '.join(DISCRETIZATIONS)}")
    if not (dt > 0 and math.isfinite(dt)):
        raise ExportError(f"dt must be a positive finite number (one model step), got {dt!r}")


def nir_from_ems(tau: float, v_th: float, discretization: str = "euler", dt: float = 1.0) -> NeuronParams:
    """NIR parameters of an EMS-YOLO LIF with leak factor ``tau`` and threshold ``v_th``.

    Raises:
        ExportError: an unknown discretization, a bad ``dt``, or ``tau = 0`` under ``"exact"``
            (no finite time constant forgets everything in one step).
    """
    _check(discretization, dt)
    if not 0.0 <= tau <= 1.0:
        raise ExportError(f"LIF leak factor must lie in [0, 1], got {tau}")
    if tau == 1.0:
        return NeuronParams("IF", None, 1.0 / dt, None, float(v_th))
    r = 1.0 / (1.0 - tau)
    if discretization == "euler":
        return NeuronParams("LIF", dt / (1.0 - tau), r, 0.0, float(v_th))
    if tau == 0.0:
        raise ExportError(
            "a LIF with leak factor 0 has no exact-discretisation time constant (tau_m = 0); "
            "export with discretization='euler' (tau_m = dt)"
        )
    return NeuronParams("LIF", -dt / math.log(tau), r, 0.0, float(v_th))


def ems_from_nir(params: NeuronParams, discretization: str, dt: float) -> tuple[float, float, float]:
    """``(tau, v_th, gain)`` of the EMS-YOLO LIF that a NIR LIF/IF runs under ``discretization``.

    ``gain`` multiplies the input current: EMS-YOLO's LIF has none, so callers accept only
    ``|gain − 1| <= GAIN_RTOL``. Non-zero ``v_leak`` or ``v_reset`` raise :class:`ExportError`.
    """
    _check(discretization, dt)
    if params.v_reset != 0.0:
        raise ExportError(f"v_reset = {params.v_reset}: EMS-YOLO neurons reset to 0")
    if params.model == "IF":
        return 1.0, params.v_threshold, params.r * dt
    if params.model != "LIF":
        raise ExportError(f"{params.model} is not an EMS-YOLO neuron; supported: LIF, IF")
    if params.v_leak != 0.0:
        raise ExportError(f"v_leak = {params.v_leak}: EMS-YOLO neurons leak towards 0")
    if not (params.tau is not None and params.tau > 0):
        raise ExportError(f"tau = {params.tau}: a LIF time constant must be positive")
    if discretization == "euler":
        step = dt / params.tau  # the fraction of the way to v_leak covered in one step
        if step > 1.0 + GAIN_RTOL:
            raise ExportError(
                f"tau = {params.tau} < dt = {dt}: forward Euler overshoots (leak factor {1 - step:.3g} < 0)"
            )
        return max(0.0, 1.0 - step), params.v_threshold, step * params.r
    decay = math.exp(-dt / params.tau)
    return decay, params.v_threshold, (1.0 - decay) * params.r
