"""Integer semantics of the Loihi fixed-point ops, vectorised over ``[B, C, H, W]`` (torch int64).

Each function reproduces one lava-nc 0.10.0 ProcessModel bit for bit (DESIGN.md §8) with the
widths of the profile the quantize pass stored in ``graph.attrs["loihi"]``:

* :func:`lif_step` — ``PyLifResetModelBitAcc.run_spk`` (int32 input sum, trunc-toward-zero
  decays, the 24-bit wrap of u with Lava's exact corrections, saturation of v, strict threshold,
  reset of v only);
* :func:`conv_payload` — ``PyConvModelFixed`` (a true convolution in float64, then
  ``astype(int32)`` and ``signed_clamp(24)``); the IR keeps PyTorch's correlation and the
  exporter flips the kernel, so a correlation here is the same sum;
* :func:`sparse_payload` — ``PySparseModelBitAcc`` / ``PyDelaySparseModelBitAcc`` with weights
  ``2m`` and exponent ``e − 1`` (int32 accumulate, arithmetic shift);
* :func:`host_payload` — the host terms (input quantization, integer conv, rounding shift).

Float64 convolutions are exact here because every product and partial sum is an integer below
2**53 (the DRC of the Lava exporter checks the bound).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from emsdeploy.ir.ops.loihi import HostConv, HostSparse, LoihiLIF, LoihiReadout, SynConv, SynSparse

__all__ = [
    "Profile",
    "conv_payload",
    "effective_bias",
    "host_payload",
    "lif_step",
    "quantize_input",
    "sparse_payload",
    "wrap",
]

Profile = dict[str, Any]  # graph.attrs["loihi"]


def wrap(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Two's-complement wrap to ``bits`` (what an int32 overflow or signed_clamp does)."""
    half = 1 << (bits - 1)
    if x.numel() == 0 or (int(x.max()) < half and int(x.min()) >= -half):
        return x
    return torch.remainder(x + half, 1 << bits) - half


def _trunc_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """sign(x) · (|x| >> shift): Lava's round-toward-zero right shift."""
    return torch.sign(x) * (torch.abs(x) >> shift)


def effective_bias(op: LoihiLIF | LoihiReadout) -> torch.Tensor:
    """bias_mant << bias_exp, in v units (Lava recomputes it every step; it is constant)."""
    return torch.from_numpy(op.bias_mant_s13.astype(np.int64)) << op.bias_exp_u3


def lif_step(
    op: LoihiLIF | LoihiReadout,
    a: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    eff_bias: torch.Tensor,
    p: Profile,
    stats: dict[str, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LIF update; ``a`` is the summed input (already int32-wrapped). Returns (s, u, v)."""
    unity = 1 << p["decay_shift"]
    half = 1 << (p["uv_bits"] - 1)
    du = op.du_u12 + p["ds_offset"]
    dv = op.dv_u12 + p["dm_offset"]
    # current: int64 product, truncate toward zero, back to int32
    decayed_u = wrap(_trunc_shift(u * (unity - du), p["decay_shift"]), 32)
    act = wrap(a << p["act_shift"], 32)
    cur = wrap(decayed_u + act, 32)
    # Lava's 24-bit wrap: one correction each way; the second test reads the first result but
    # corrects the original value (proc/lif/models.py)
    wrapped = torch.where(cur > half, cur - 2 * half, cur)
    wrapped = torch.where(wrapped <= -half, cur + 2 * half, wrapped)
    if stats is not None:
        stats["u_wraps"] = stats.get("u_wraps", 0) + int(torch.count_nonzero(wrapped != cur))
    u = wrapped
    decayed_v = wrap(_trunc_shift(v * (unity - dv), p["decay_shift"]), 32)
    pre = wrap(decayed_v + u + eff_bias, 32)
    v = torch.clamp(pre, -(half - 1), half - 1)
    if stats is not None:
        stats["v_saturations"] = stats.get("v_saturations", 0) + int(torch.count_nonzero(v != pre))
    s = v > (op.vth_u17 << p["vth_shift"])
    v = torch.where(s, torch.zeros_like(v), v)
    return s, u, v


def conv_payload(op: SynConv, mantissa: torch.Tensor, x: torch.Tensor, p: Profile) -> torch.Tensor:
    """What a Lava ``Conv`` sends one step after it receives spikes ``x`` (int64 out).

    Lava convolves with m·2**e in float64; here the 0/1 spikes meet the 8-bit mantissas in
    float32, exact because |Σ m·x| <= 128 · fan-in < 2**24, and the exponent is applied in int64.
    """
    acc = F.conv2d(x.to(torch.float32), mantissa, None, op.stride, op.padding, op.dilation, op.groups)
    return wrap(acc.to(torch.int64) << op.weight_exp_s4, p["conv_accumulator_bits"])


def sparse_payload(op: SynSparse, matrix: sp.csr_matrix, x: torch.Tensor, p: Profile) -> torch.Tensor:
    """What a Lava ``Sparse``/``DelaySparse`` with weights 2m and exponent e − 1 sends."""
    b = x.shape[0]
    flat = x.reshape(b, -1).numpy().astype(np.int64).T
    acc = np.asarray(matrix @ flat).T  # Σ m·x, exact in int64
    acc2 = torch.from_numpy(np.ascontiguousarray(acc)) * 2
    acc2 = wrap(acc2, p["sparse_accumulator_bits"])
    shift = op.weight_exp_s4 - 1
    out = acc2 << shift if shift > 0 else acc2 >> (-shift)
    return wrap(out, 32).reshape(b, *op.out_shape)


def quantize_input(x: torch.Tensor, in_scale: float) -> torch.Tensor:
    """The host's input quantization: rint(x · in_scale) (ties to even, as numpy's rint)."""
    return torch.round(x.to(torch.float64) * in_scale).to(torch.int64)


def host_payload(op: HostConv | HostSparse, weight: Any, x_int: torch.Tensor) -> torch.Tensor:
    """A host term: integer map of the quantized input with a rounding right shift."""
    if isinstance(op, HostConv):
        acc = F.conv2d(x_int.to(torch.float64), weight, None, op.stride, op.padding, op.dilation, op.groups)
        acc = acc.to(torch.int64)  # exact integers: |Σ w·x| < 2**53
    else:
        b = x_int.shape[0]
        flat = x_int.reshape(b, -1).numpy().astype(np.int64).T
        acc = torch.from_numpy(np.ascontiguousarray(np.asarray(weight @ flat).T)).reshape(b, *op.out_shape)
    h = op.shift_u5
    return (acc + (1 << (h - 1))) >> h if h > 0 else acc
