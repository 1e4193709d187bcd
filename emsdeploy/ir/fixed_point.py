r"""The integer steps of the Loihi fixed-point populations, written once (DESIGN.md §8, docs/lava.md).

ref-fixed (``simulators/ref_fixed.py``) and the Lava ProcessModels emsdeploy adds
(``exporters/lava/procs``) both call these functions, so the two cannot drift apart; the ONNX
fixed-point lowering emits the same operations. Plain numpy on ``int64`` arrays whose last three
axes are (C, H, W) (any leading axes: a batch, or none), no torch: Lava runs its ProcessModels
in forked workers.

* :func:`lif_step` — lava-nc 0.10.0 ``PyLifResetModelBitAcc.run_spk`` (int32 input sum,
  trunc-toward-zero decays, the 24-bit wrap of u with Lava's exact corrections, saturation of v,
  strict threshold, reset of v only). Lava itself runs its stock model; this is ref-fixed's copy
  of that arithmetic, checked against lava-nc's code in tests/simulators/test_ref_fixed.py;
* :func:`maxpool_step` — :class:`~emsdeploy.ir.ops.loihi.FixedMaxPool`: k×k max of ``a + b``,
  then a rounding right shift;
* :func:`silu_step` — :class:`~emsdeploy.ir.ops.loihi.FixedSiLU`: the SiLU neuron's recurrence
  in float64 on the integer current, rounded once per step;
* :func:`integer_lif_step` — :class:`~emsdeploy.ir.ops.loihi.LoihiIntegerLIF`: SpikeYOLO's
  I-LIF in integers (exact shifts for the decay, round half to even by an integer rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .ops.loihi import FixedMaxPool, FixedSiLU, LoihiIntegerLIF, LoihiLIF, LoihiReadout

__all__ = [
    "ILIFState",
    "Ints",
    "SiLUState",
    "effective_bias",
    "integer_lif_step",
    "lif_step",
    "maxpool_step",
    "round_half_even_shift",
    "silu_step",
    "trunc_shift",
    "wrap",
]

Ints = npt.NDArray[np.int64]
SiLUState = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None
ILIFState = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None


def wrap(x: npt.ArrayLike, bits: int) -> Ints:
    """Two's-complement wrap to ``bits`` (what an int32 overflow or Lava's ``signed_clamp`` does)."""
    arr: Ints = np.asarray(x, dtype=np.int64)
    half = 1 << (bits - 1)
    if arr.size == 0 or (int(arr.max()) < half and int(arr.min()) >= -half):
        return arr
    wrapped: Ints = np.remainder(arr + half, 1 << bits) - half
    return wrapped


def trunc_shift(x: Ints, shift: int) -> Ints:
    """sign(x) · (|x| >> shift): Lava's round-toward-zero right shift (= truncating division).
    Computed as ``(x + (2**shift − 1 if x < 0 else 0)) >> shift``, one temporary."""
    out: Ints = x >> 63  # -1 where x < 0, else 0
    out &= (1 << shift) - 1
    out += x
    out >>= shift
    return out


def effective_bias(op: LoihiLIF | LoihiReadout) -> Ints:
    """bias_mant << bias_exp, in v units (Lava recomputes it every step; it is constant)."""
    out: Ints = op.bias_mant_s13.astype(np.int64) << op.bias_exp_u3
    return out


def lif_step(
    op: LoihiLIF | LoihiReadout,
    a: npt.ArrayLike,
    u: npt.ArrayLike,
    v: npt.ArrayLike,
    eff_bias: Ints,
    p: dict[str, Any],
    stats: dict[str, int] | None = None,
    a_bound: int | None = None,
) -> tuple[npt.NDArray[np.bool_], Ints, Ints]:
    """One LIF update. Returns (s, u, v).

    Args:
        op: the population (its du, dv, vth).
        a: the int32-wrapped sum of its inputs this step.
        u, v: the state after the previous step (zeros after a reset).
        eff_bias: :func:`effective_bias` of ``op``.
        p: the profile the quantize pass stored (``graph.attrs["loihi"]``: shifts, widths, offsets).
        stats: if given, counts ``u_wraps`` and ``v_saturations`` into it.
        a_bound: a proven bound on |a|; lets the int32 overflow checks go.
    """
    a_arr, u_arr, v_arr = (np.asarray(t, dtype=np.int64) for t in (a, u, v))
    unity = 1 << p["decay_shift"]
    half = 1 << (p["uv_bits"] - 1)
    keep_u = unity - (op.du_u12 + p["ds_offset"])
    keep_v = unity - (op.dv_u12 + p["dm_offset"])
    # current: int64 product, truncated toward zero (|u| < 2**24, so it fits int32 again)
    act = a_arr << p["act_shift"]
    safe = a_bound is not None and (a_bound << p["act_shift"]) + 2 * half < 1 << 31
    if not safe:
        act = wrap(act, 32)
    if keep_u == 0:  # du = 4095: no synaptic memory (the EMS-YOLO LIF)
        cur = act
    else:
        cur = trunc_shift(u_arr * keep_u, p["decay_shift"]) + act
        if not safe:
            cur = wrap(cur, 32)
    # Lava's 24-bit wrap: one correction each way; the second test reads the first result but
    # corrects the original value (proc/lif/models.py)
    if cur.size and (int(cur.max()) > half or int(cur.min()) <= -half):
        wrapped = np.where(cur > half, cur - 2 * half, cur)
        wrapped = np.where(wrapped <= -half, cur + 2 * half, wrapped)
        if stats is not None:
            stats["u_wraps"] = stats.get("u_wraps", 0) + int(np.count_nonzero(wrapped != cur))
        cur = wrapped
    u_new = cur
    if keep_v == unity:  # dv = 0: an integrator
        pre = v_arr + u_new + eff_bias
    else:
        pre = trunc_shift(v_arr * keep_v, p["decay_shift"]) + u_new + eff_bias  # |.| < 2**25: no int32 overflow
    v = pre
    if pre.size and (int(pre.max()) > half - 1 or int(pre.min()) < -(half - 1)):
        v = np.clip(pre, -(half - 1), half - 1)
        if stats is not None:
            stats["v_saturations"] = stats.get("v_saturations", 0) + int(np.count_nonzero(v != pre))
    s = v > (op.vth_u17 << p["vth_shift"])
    v = np.where(s, 0, v)
    return s, u_new, v


def maxpool_step(op: FixedMaxPool, a: npt.ArrayLike) -> Ints:
    """One step of :class:`~emsdeploy.ir.ops.loihi.FixedMaxPool`: ``a`` is the int sum of its
    inputs (``(..., C, H, W)``). Max over each k×k window (stride s, padding p whose taps never
    win, the last rows and columns that fill no window dropped) of ``a + bias``, then
    ``(z + 2**(r-1)) >> r`` (r = ``out_shift_u5``)."""
    k, s, p = op.kernel, op.stride, op.padding
    z = np.add(a, op.bias_s24, dtype=np.int64)
    if p:  # below every 32-bit sum: a padded tap never wins (every window holds a real one)
        pad = [(0, 0)] * (z.ndim - 2) + [(p, p), (p, p)]
        z = np.pad(z, pad, constant_values=-(1 << 40))
    _, ho, wo = op.output_shape([op.in_shape()])
    hs, ws = s * (ho - 1) + 1, s * (wo - 1) + 1
    y: Ints = z[..., 0:hs:s, 0:ws:s]
    for i in range(k):  # the window's k·k strided views, elementwise (no reshaped copy)
        for j in range(k):
            if i or j:
                y = np.maximum(y, z[..., i : i + hs : s, j : j + ws : s])
    r = op.out_shift_u5
    if r:
        y = (y + (1 << (r - 1))) >> r
    return y


def silu_step(op: FixedSiLU, a: npt.ArrayLike, state: SiLUState) -> tuple[Ints, SiLUState]:
    """One step of :class:`~emsdeploy.ir.ops.loihi.FixedSiLU`: ``a`` is the int sum of its inputs
    (``(..., C, H, W)``); ``state`` is ``None`` right after a reset. Returns (graded int64 output, state)."""
    bias = op.bias_s24.astype(np.float64)
    current = (np.asarray(a, dtype=np.float64) + bias) / op.scale_in
    if state is None:
        m = current
    else:
        m_prev, s_prev = state
        m = op.tau * (s_prev if op.inplace else m_prev) * (1.0 - s_prev) + current
    s = m / (1.0 + np.exp(-m))
    y: Ints = np.rint(s * op.scale_out).astype(np.int64)
    return y, (m, s)


def round_half_even_shift(c: Ints, bits: int) -> Ints:
    """``round(c / 2**bits)`` with ties to even, for integers ``c >= 0``: the quotient plus one
    where the remainder is above half, or exactly half and the quotient odd."""
    if bits == 0:
        return c
    q = c >> bits
    r = c - (q << bits)
    half = 1 << (bits - 1)
    out: Ints = q + ((r > half) | ((r == half) & ((q & 1) == 1)))
    return out


def integer_lif_step(
    op: LoihiIntegerLIF,
    a: npt.ArrayLike,
    state: ILIFState,
    p: dict[str, Any],
    stats: dict[str, int] | None = None,
) -> tuple[Ints, ILIFState]:
    """One step of :class:`~emsdeploy.ir.ops.loihi.LoihiIntegerLIF`: ``a`` is the int sum of its
    inputs (``(..., C, H, W)``); ``state`` (V, s) is None right after a reset. Returns (the
    integers 0..D, state). V saturates at the profile's ``uv_bits`` (counted in ``stats``)."""
    qb, f = op.unit_bits, op.frac_bits_u5
    current = np.add(a, op.bias_s24, dtype=np.int64) << f
    if state is None:
        v = current
    else:
        v_prev, s_prev = state
        v = ((v_prev - (s_prev << qb)) >> op.decay_shift_u4) + current  # exact while f covers the steps
    half = (1 << (p["uv_bits"] - 1)) - 1
    if v.size and (int(v.max()) > half or int(v.min()) < -half):
        clipped = np.clip(v, -half, half)
        if stats is not None:
            stats["v_saturations"] = stats.get("v_saturations", 0) + int(np.count_nonzero(clipped != v))
        v = clipped
    s = round_half_even_shift(np.clip(v, 0, op.levels << qb), qb)
    return s, (v, s)
