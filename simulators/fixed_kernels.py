"""Integer semantics of the Loihi synapse groups and host terms, vectorised over ``[B, C, H, W]`` (torch int64).

Each function reproduces one lava-nc 0.10.0 ProcessModel bit for bit (DESIGN.md §8) with the
widths of the profile the quantize pass stored in ``graph.attrs["loihi"]``. The populations'
steps (LIF, max-pool, SiLU) are in :mod:`emsdeploy.ir.fixed_point`, shared with the Lava
ProcessModels; these are the payloads that feed them (convolutions want torch):

* :func:`conv_payload` — ``PyConvModelFixed`` (a true convolution in float64, then
  ``astype(int32)`` and ``signed_clamp(24)``); the IR keeps PyTorch's correlation and the
  exporter flips the kernel, so a correlation here is the same sum. A delayed conv is lowered
  to a ``DelaySparse`` (int32, no 24-bit wrap);
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

from emsdeploy.ir.fixed_point import wrap
from emsdeploy.ir.ops.loihi import HostConv, HostSparse, SynConv, SynSparse

__all__ = [
    "Profile",
    "conv_payload",
    "diagonal",
    "diagonal_weights",
    "graded_conv_payload",
    "host_payload",
    "is_diagonal",
    "payload_bound",
    "quantize_input",
    "sparse_payload",
]

Profile = dict[str, Any]  # graph.attrs["loihi"]


def _wrap(x: torch.Tensor, bits: int) -> torch.Tensor:
    """:func:`emsdeploy.ir.fixed_point.wrap` on a CPU int64 tensor (no copy when nothing wraps)."""
    return torch.from_numpy(wrap(x.numpy(), bits))


def conv_payload(
    op: SynConv, mantissa: torch.Tensor, x: torch.Tensor, p: Profile, bound: int | None = None
) -> torch.Tensor:
    """What a Lava ``Conv`` sends one step after it receives spikes ``x`` (int64 out).

    Lava convolves with m·2**e in float64; here the 0/1 spikes meet the 8-bit mantissas in
    float32, exact because |Σ m·x| <= 128 · fan-in < 2**24, and the exponent is applied in int64.
    """
    acc = F.conv2d(x.to(torch.float32), mantissa, None, op.stride, op.padding, op.dilation, op.groups)
    acc = acc.to(torch.int64) << op.weight_exp_s4
    bits = p["sparse_accumulator_bits"] if op.delay_u6 else p["conv_accumulator_bits"]  # delayed: a DelaySparse
    if bound is not None and bound < 1 << (bits - 1):
        return acc
    return _wrap(acc, bits)


def graded_conv_payload(op: SynConv, weight: torch.Tensor, x: torch.Tensor, p: Profile) -> torch.Tensor:
    """A Lava ``Conv`` with ``num_message_bits > 0`` on graded integers ``x``: the float64 sum of
    x·(m·2**e) (exact: the quantizer bounds it below 2**23), cast to int and wrapped to 24 bits
    (no shift: graded payloads enter as they are)."""
    acc = F.conv2d(x.to(torch.float64), weight, None, op.stride, op.padding, op.dilation, op.groups)
    return _wrap(acc.to(torch.int64), p["conv_accumulator_bits"])


def is_diagonal(op: SynSparse) -> bool:
    """Whether ``op`` is a diagonal group (an identity or channel scaling of a graded source, a
    relay's input): one weight per element, element i to element i. Computed elementwise."""
    n = int(np.prod(op.in_shape))
    if op.in_shape != op.out_shape or op.indices.size != n:
        return False
    return bool(np.array_equal(op.indptr, np.arange(n + 1)) and np.array_equal(op.indices, np.arange(n)))


def diagonal(op: SynSparse) -> torch.Tensor | None:
    """The per-element weights ``(C, H, W)`` (int64) of a diagonal group, or None."""
    if not is_diagonal(op):
        return None
    return diagonal_weights(op)


def diagonal_weights(op: SynSparse) -> torch.Tensor:
    """The weights of a group :func:`is_diagonal` accepted, as ``(C, H, W)`` int64."""
    return torch.from_numpy(op.weight_s8.astype(np.int64)).reshape(op.out_shape)


def sparse_payload(
    op: SynSparse, matrix: sp.csr_matrix | torch.Tensor, x: torch.Tensor, p: Profile, bound: int | None = None
) -> torch.Tensor:
    """What a Lava ``Sparse``/``DelaySparse`` with weights 2m and exponent e − 1 sends.
    ``matrix`` is the CSR matrix, or the (C, H, W) weights of a diagonal group."""
    b = x.shape[0]
    if isinstance(matrix, torch.Tensor):
        acc = (x * matrix).reshape(b, -1)
    else:
        flat = x.reshape(b, -1).numpy().astype(np.int64).T
        acc = torch.from_numpy(np.ascontiguousarray(np.asarray(matrix @ flat).T))  # Σ m·x, exact in int64
    e = op.weight_exp_s4
    if bound is not None and 2 * bound < 1 << (p["sparse_accumulator_bits"] - 1) and (bound << max(e, 0)) < 1 << 31:
        # no overflow possible: (2·acc) shifted by e - 1 is acc shifted by e (floor for e < 0)
        out = acc << e if e >= 0 else acc >> (-e)
        return out.reshape(b, *op.out_shape)
    shift = e - 1
    acc2 = _wrap(acc * 2, p["sparse_accumulator_bits"])
    out = acc2 << shift if shift > 0 else acc2 >> (-shift)
    return _wrap(out, 32).reshape(b, *op.out_shape)


def payload_bound(op: SynConv | SynSparse) -> int:
    """A proven bound on |Σ m·x| for 0/1 inputs (the largest sum of |mantissas| into one output)."""
    if isinstance(op, SynConv):
        w = np.abs(op.weight_s8.astype(np.int64))
        return int(w.reshape(w.shape[0], -1).sum(1).max()) if w.size else 0
    n = len(op.indptr) - 1
    m = sp.csr_matrix(
        (np.abs(op.weight_s8.astype(np.int64)), op.indices, op.indptr), shape=(n, int(np.prod(op.in_shape)))
    )
    return int(np.asarray(m.sum(axis=1)).max()) if m.nnz else 0


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
