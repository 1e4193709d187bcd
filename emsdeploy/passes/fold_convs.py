"""Compose chains of convolutions with nothing between them into one convolution.

SpikeYOLO's re-parameterisable blocks (README §6 of the official fixture) are linear chains:
``RepConv`` = 1×1 → BN-and-pad → depthwise 3×3 (pad 0) → 1×1 → BN, and ``SepRepConv`` + BN =
BN-and-pad → 1×1 → depthwise 3×3 (pad 0) → BN. Traced, BN-and-pad is a depthwise 1×1 with zero
padding followed by the BN's Affine; after :func:`~.fold_affine.fold_affine` each block is a
chain of Conv2d nodes, and this pass makes it one zero-padded 3×3 conv with a bias, the layer
the deployed model runs.

Pre: a ``Conv2d`` B whose only input is a ``Conv2d`` A read by nothing else (and not an output),
where the composition is exact:

* A is pointwise (1×1, stride 1, no padding, no dilation) and B pads nothing or A has no bias
  (a bias-free pointwise map sends the zero border to zero, so the padding commutes); or
* B is pointwise; or
* both have stride 1 and dilation 1, and B pads nothing (kernel k_A + k_B − 1, A's padding).

Post: one ``Conv2d`` named after B, computed in float64 with dense weights (groups expanded):
``W'[o, i] = Σ_m B[o, m] ⋆ A[m, i]`` (full 2-D convolution of the kernels) and
``b' = b_B + Σ_m (Σ B[o, m]) · b_A[m]``; A's readers are gone. Mathematically exact; in float
the sums are re-associated, so a membrane within rounding of a threshold could move (verify
reports it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..ir import Conv2d, Graph

__all__ = ["compose_convs", "fold_convs"]


def _dense(op: Conv2d) -> NDArray[Any]:
    """``[C_out, C_in, kh, kw]`` float64, the groups laid out block-diagonally."""
    w = op.weight.astype(np.float64)
    if op.groups == 1:
        return w
    c_out, c_in_g = w.shape[:2]
    out_g = c_out // op.groups
    dense = np.zeros((c_out, c_in_g * op.groups, *w.shape[2:]))
    for g in range(op.groups):
        dense[g * out_g : (g + 1) * out_g, g * c_in_g : (g + 1) * c_in_g] = w[g * out_g : (g + 1) * out_g]
    return dense


def _pointwise(op: Conv2d) -> bool:
    return op.kernel_size == (1, 1) and op.stride == (1, 1) and op.padding == (0, 0) and op.dilation == (1, 1)


def _bias_free(op: Conv2d) -> bool:
    return op.bias is None or not np.any(op.bias)


def compose_convs(a: Conv2d, b: Conv2d) -> Conv2d | None:
    """The one conv equal to ``b(a(x))``, or None when that is not exact (module docstring)."""
    if _pointwise(a) and (b.padding == (0, 0) or _bias_free(a)):
        geometry = (b.stride, b.padding, b.dilation)
    elif _pointwise(b):
        geometry = (a.stride, a.padding, a.dilation)
    elif a.stride == a.dilation == b.stride == b.dilation == (1, 1) and b.padding == (0, 0):
        geometry = ((1, 1), a.padding, (1, 1))
    else:
        return None
    wa, wb = _dense(a), _dense(b)
    (kah, kaw), (kbh, kbw) = wa.shape[2:], wb.shape[2:]
    weight = np.zeros((wb.shape[0], wa.shape[1], kah + kbh - 1, kaw + kbw - 1))
    for y in range(kbh):  # B's tap (y, x) reads A's output there, i.e. A's kernel shifted by (y, x)
        for x in range(kbw):
            weight[:, :, y : y + kah, x : x + kaw] += np.tensordot(wb[:, :, y, x], wa, axes=(1, 0))  # BLAS
    bias = np.zeros(wb.shape[0]) if b.bias is None else b.bias.astype(np.float64)
    if a.bias is not None:
        bias = bias + wb.sum((2, 3)) @ a.bias.astype(np.float64)
    stride, padding, dilation = geometry
    return Conv2d(weight, bias, stride, padding, dilation, 1)


def fold_convs(graph: Graph) -> Graph:
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        users = g.users()
        for node in g.nodes:
            if not isinstance(node.op, Conv2d):
                continue
            src = g[node.inputs[0]]
            if not isinstance(src.op, Conv2d) or len(users[src.name]) != 1 or src.name in g.outputs:
                continue
            op = compose_convs(src.op, node.op)
            if op is None:
                continue
            folded = [*src.meta.get("folded", []), src.name, *node.meta.get("folded", [])]
            g.replace(node.name, op=op, inputs=list(src.inputs), folded=folded)
            g.remove([src.name])
            changed = True
            break  # users changed: recompute
    return g.validate()
