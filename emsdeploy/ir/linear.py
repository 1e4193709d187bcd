"""Linear maps between populations: the algebra that folds linear IR ops into synapse groups.

On Loihi only neuron populations hold state and only synapse groups (one hop each) carry values
between them, so every IR op that is linear on its inputs (``Conv2d``, ``Affine``, ``Add``,
``Concat``, ``Upsample``) ends up inside a synapse group. A population's input current is

    I_P = Σ_t  map_t(output of source_t) + bias_P

(:class:`Fanin`, one :class:`Term` per source). This module holds the maps and what can be done
with them, on values alone: compose, add, apply, turn into a matrix, and estimate from shapes
what a chain of maps costs once folded. It reads no graph; walking a graph into terms is the
:func:`~emsdeploy.passes.expand_fanin.expand_fanin` pass, and turning terms into integers is
:func:`~emsdeploy.passes.quantize.quantize`. Everything is float64, exact in exact arithmetic.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from ..errors import PassError
from .ops import Conv2d
from .ops.base import Shape

__all__ = [
    "Chain",
    "ConvMap",
    "Fanin",
    "LinearMap",
    "SparseMap",
    "Term",
    "UpsampleMap",
    "add_bias",
    "add_maps",
    "apply_map",
    "bias_through",
    "chain_cost",
    "chain_weights",
    "collapse",
    "compose",
    "conv_map",
    "identity",
    "merge_terms",
    "merged_cost",
    "pointwise",
    "reduce_chain",
    "to_sparse",
    "upsample_map",
    "window_map",
]

Array = NDArray[np.float64]


@dataclass
class ConvMap:
    """A cross-correlation (PyTorch convention), float64 weights ``(O, I/groups, kH, kW)``."""

    weight: Array
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    in_shape: Shape
    out_shape: Shape

    @property
    def is_pointwise(self) -> bool:
        return (
            self.weight.shape[2:] == (1, 1)
            and self.stride == (1, 1)
            and self.padding == (0, 0)
            and self.in_shape[1:] == self.out_shape[1:]
        )

    def full_weight(self) -> Array:
        """The weight with groups expanded to a block-diagonal ``(O, I, kH, kW)`` kernel."""
        if self.groups == 1:
            return self.weight
        o, ig, kh, kw = self.weight.shape
        og = o // self.groups
        full = np.zeros((o, ig * self.groups, kh, kw))
        for g in range(self.groups):
            full[g * og : (g + 1) * og, g * ig : (g + 1) * ig] = self.weight[g * og : (g + 1) * og]
        return full

    def matrix(self) -> Array:
        """``(O, I)`` channel matrix of a pointwise map."""
        return self.full_weight()[:, :, 0, 0]

    def is_identity(self) -> bool:
        if not self.is_pointwise or self.in_shape != self.out_shape:
            return False
        return bool(np.array_equal(self.matrix(), np.eye(self.in_shape[0])))


@dataclass
class SparseMap:
    """Any linear map as a CSR matrix ``(N_out, N_in)``, both sides flattened in (C, H, W) order."""

    matrix: Any  # scipy.sparse.csr_matrix (float64)
    in_shape: Shape
    out_shape: Shape


@dataclass
class UpsampleMap:
    """Nearest-neighbour upsampling by ``scale``. Kept symbolic because it commutes with
    channel mixing: a chain moves 1×1 maps past it so they merge with convolutions."""

    scale: int
    in_shape: Shape
    out_shape: Shape


LinearMap = ConvMap | SparseMap | UpsampleMap
Chain = tuple[LinearMap, ...]  # maps applied innermost (last) first: outer ∘ … ∘ inner


def identity(shape: Shape) -> ConvMap:
    return pointwise(np.eye(shape[0]), shape)


def pointwise(matrix: NDArray[Any], in_shape: Shape) -> ConvMap:
    """A per-position channel matrix ``(O, I)`` (concat embedding, affine, 1×1 conv)."""
    o = matrix.shape[0]
    return ConvMap(
        np.asarray(matrix, np.float64).reshape(o, -1, 1, 1),
        (1, 1),
        (0, 0),
        (1, 1),
        1,
        tuple(in_shape),
        (o, *in_shape[1:]),
    )


# op -> float64 weight: a convolution is expanded into many chains, convert its weight once
_WEIGHTS64: weakref.WeakKeyDictionary[Conv2d, Array] = weakref.WeakKeyDictionary()


def conv_map(op: Conv2d, in_shape: Shape) -> ConvMap:
    """The map of a ``Conv2d`` op (without its bias) reading values of shape ``in_shape``."""
    w = _WEIGHTS64.get(op)
    if w is None:
        w = _WEIGHTS64[op] = op.weight.astype(np.float64)
    return ConvMap(
        w,
        op.stride,
        op.padding,
        op.dilation,
        op.groups,
        tuple(in_shape),
        tuple(op.output_shape([in_shape])),
    )


def window_map(kernel: int, in_shape: Shape) -> ConvMap:
    """Depthwise all-ones k×k, stride k: the synapse of a spike max-pool (OR over the window)."""
    c, h, w = in_shape
    return ConvMap(
        np.ones((c, 1, kernel, kernel)),
        (kernel, kernel),
        (0, 0),
        (1, 1),
        c,
        tuple(in_shape),
        (c, h // kernel, w // kernel),
    )


def upsample_map(scale: int, in_shape: Shape) -> UpsampleMap:
    c, h, w = in_shape
    return UpsampleMap(int(scale), tuple(in_shape), (c, h * scale, w * scale))


def _upsample_matrix(m: UpsampleMap) -> SparseMap:
    c, h, w = m.in_shape
    scale = m.scale
    oc, oh, ow = m.out_shape
    ci, yi, xi = np.meshgrid(np.arange(oc), np.arange(oh), np.arange(ow), indexing="ij")
    cols = (ci * h + yi // scale) * w + xi // scale
    n = oc * oh * ow
    mat = sp.csr_matrix((np.ones(n), (np.arange(n), cols.ravel())), shape=(n, c * h * w))
    return SparseMap(mat, tuple(m.in_shape), tuple(m.out_shape))


def to_sparse(m: LinearMap) -> SparseMap:
    """The matrix of a map (exact: same float64 values, zero weights dropped)."""
    if isinstance(m, SparseMap):
        return m
    if isinstance(m, UpsampleMap):
        return _upsample_matrix(m)
    w = m.full_weight()
    o, _, kh, kw = w.shape
    ci, hi, wi = m.in_shape
    _, ho, wo = m.out_shape
    (sh, sw), (ph, pw), (dh, dw) = m.stride, m.padding, m.dilation
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    rows, cols, vals = [], [], []
    for ky in range(kh):
        for kx in range(kw):
            iy = oy * sh - ph + ky * dh
            ix = ox * sw - pw + kx * dw
            ok = (iy >= 0) & (iy < hi) & (ix >= 0) & (ix < wi)
            if not ok.any():
                continue
            pos_out = (oy * wo + ox)[ok]
            pos_in = (iy * wi + ix)[ok]
            oo, ii = np.nonzero(w[:, :, ky, kx])
            if oo.size == 0:
                continue
            rows.append((oo[:, None] * (ho * wo) + pos_out[None, :]).ravel())
            cols.append((ii[:, None] * (hi * wi) + pos_in[None, :]).ravel())
            vals.append(np.repeat(w[oo, ii, ky, kx], pos_out.size))
    n_out, n_in = o * ho * wo, ci * hi * wi
    if rows:
        mat = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_out, n_in))
    else:
        mat = sp.csr_matrix((n_out, n_in))
    mat.sum_duplicates()
    mat.eliminate_zeros()
    return SparseMap(mat, tuple(m.in_shape), tuple(m.out_shape))


def compose(outer: LinearMap, inner: LinearMap) -> LinearMap:
    """``outer ∘ inner``; stays a convolution when one side is pointwise, else a sparse matrix."""
    if tuple(inner.out_shape) != tuple(outer.in_shape):
        raise PassError(f"cannot compose maps: {inner.out_shape} feeds a map expecting {outer.in_shape}")
    if isinstance(inner, ConvMap) and inner.is_identity():
        return outer
    if isinstance(outer, ConvMap) and outer.is_identity():
        return inner
    if isinstance(outer, ConvMap) and isinstance(inner, ConvMap):
        if outer.is_pointwise:
            inw = inner.full_weight()
            w = (outer.matrix() @ inw.reshape(inw.shape[0], -1)).reshape(-1, *inw.shape[1:])  # BLAS, not einsum
            return ConvMap(w, inner.stride, inner.padding, inner.dilation, 1, inner.in_shape, outer.out_shape)
        if inner.is_pointwise:
            w = (outer.full_weight().transpose(0, 2, 3, 1) @ inner.matrix()).transpose(0, 3, 1, 2)
            return ConvMap(w, outer.stride, outer.padding, outer.dilation, 1, inner.in_shape, outer.out_shape)
    a, b = to_sparse(outer), to_sparse(inner)
    m = (a.matrix @ b.matrix).tocsr()
    m.eliminate_zeros()
    return SparseMap(m, tuple(inner.in_shape), tuple(outer.out_shape))


def add_maps(a: LinearMap, b: LinearMap) -> LinearMap:
    """``a + b`` for maps with the same source and destination."""
    if isinstance(a, ConvMap) and isinstance(b, ConvMap):
        same = (a.stride, a.padding, a.dilation, a.groups, a.weight.shape) == (
            b.stride,
            b.padding,
            b.dilation,
            b.groups,
            b.weight.shape,
        )
        if same:
            return ConvMap(a.weight + b.weight, a.stride, a.padding, a.dilation, a.groups, a.in_shape, a.out_shape)
        big, small = (a, b) if a.weight.shape[2] >= b.weight.shape[2] else (b, a)
        merged = _embed_kernel(small, big)
        if merged is not None:
            return ConvMap(
                big.full_weight() + merged, big.stride, big.padding, big.dilation, 1, a.in_shape, a.out_shape
            )
    m = (to_sparse(a).matrix + to_sparse(b).matrix).tocsr()
    m.eliminate_zeros()
    return SparseMap(m, tuple(a.in_shape), tuple(a.out_shape))


def _embed_kernel(small: ConvMap, big: ConvMap) -> Array | None:
    """``small``'s kernel placed inside ``big``'s window (zeros around) when both maps are the
    same sum over the input (equal stride; a k×k window padded p reads the same positions as a
    K×K one padded P when (K − k)/2 · dilation = P − p), else None. Keeps a shortcut plus a
    branch of one source a single convolution."""
    if small.stride != big.stride or small.out_shape != big.out_shape:
        return None
    ws, wb = small.full_weight(), big.full_weight()
    if ws.shape[:2] != wb.shape[:2]:
        return None
    out = np.zeros_like(wb)
    offs = []
    for ax in range(2):
        ks, kb = ws.shape[2 + ax], wb.shape[2 + ax]
        ds = small.dilation[ax] if ks > 1 else big.dilation[ax]
        if ds != big.dilation[ax] or (kb - ks) % 2:
            return None
        off = (kb - ks) // 2
        if off * big.dilation[ax] != big.padding[ax] - small.padding[ax]:
            return None
        offs.append(off)
    out[:, :, offs[0] : offs[0] + ws.shape[2], offs[1] : offs[1] + ws.shape[3]] = ws
    return out


def apply_map(m: LinearMap, x: NDArray[Any] | torch.Tensor) -> torch.Tensor:
    """Apply a map to ``[B, C, H, W]`` values in float64 (reference; biases, tests)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    if isinstance(m, UpsampleMap):
        return x.repeat_interleave(m.scale, 2).repeat_interleave(m.scale, 3)
    if isinstance(m, ConvMap):
        w = torch.from_numpy(np.ascontiguousarray(m.weight, np.float64))
        return F.conv2d(x, w, None, m.stride, m.padding, m.dilation, m.groups)
    b = x.shape[0]
    flat = x.reshape(b, -1).numpy().T
    out = np.asarray(m.matrix @ flat).T
    return torch.from_numpy(np.ascontiguousarray(out)).reshape(b, *m.out_shape)


def bias_through(m: LinearMap, bias: Array | None) -> Array | None:
    """A per-neuron bias ``(C, H, W)`` carried through ``m`` (None stays None)."""
    if bias is None:
        return None
    if not bias.flags.writeable:  # a read-only broadcast view (a per-channel bias): torch wants an array
        bias = bias.copy()
    out: Array = apply_map(m, bias[None]).numpy()[0]
    return out


def add_bias(a: Array | None, b: Array | None) -> Array | None:
    """``a + b`` where None means no bias."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


# ---- sums of maps: a population's fan-in ------------------------------------------------------


@dataclass
class Term:
    """One synapse group into a population: ``map`` applied to ``source``'s output each step.

    ``path`` lists the linear IR nodes the value went through (for the mapping report)."""

    source: str
    map: LinearMap
    path: tuple[str, ...] = ()


@dataclass
class Fanin:
    """A population's input current: the sum of its terms plus a per-neuron float bias."""

    terms: list[Term] = field(default_factory=list)
    bias: Array | None = None  # (C, H, W) float64; may be a read-only broadcast view


def _mergeable(a: LinearMap, b: LinearMap) -> bool:
    return isinstance(a, ConvMap) and isinstance(b, ConvMap) and (a.is_pointwise or b.is_pointwise)


def collapse(chain: Chain) -> LinearMap:
    """Compose a chain (outermost first) cheaply: move 1×1 maps inward past upsamplings (they
    commute), merge convolutions with their 1×1 neighbours, then multiply the rest from the
    destination side, where the matrices have the fewest rows. The result is the same linear
    map whatever the order."""
    items = reduce_chain(chain)
    acc = items[0]
    for m in items[1:]:
        acc = compose(acc, m)
    return acc


def reduce_chain(chain: Chain) -> list[LinearMap]:
    """The cheap part of :func:`collapse`: what is left to multiply (one item: a single map)."""
    items = list(chain)
    changed = True
    while changed:
        changed = False
        for i in range(len(items) - 1):
            a, b = items[i], items[i + 1]
            if isinstance(a, ConvMap) and a.is_pointwise and isinstance(b, UpsampleMap):
                low = ConvMap(
                    a.weight, a.stride, a.padding, a.dilation, a.groups, b.in_shape, (a.out_shape[0], *b.in_shape[1:])
                )
                items[i : i + 2] = [UpsampleMap(b.scale, low.out_shape, a.out_shape), low]
                changed = True
            elif _mergeable(a, b):
                items[i : i + 2] = [compose(a, b)]
                changed = True
                break
    return items


def merge_terms(chains: list[tuple[str, Chain, tuple[str, ...]]]) -> list[Term]:
    """One term per source from ``(source, chain, path)`` triples: each chain collapsed, maps from
    the same source summed (exact, and fewer processes), paths joined in first-seen order."""
    by_source: dict[str, Term] = {}
    for source, chain, path in chains:
        m = collapse(chain)
        if source in by_source:
            prev = by_source[source]
            joined = tuple(dict.fromkeys((*prev.path, *path)))
            by_source[source] = Term(source, add_maps(prev.map, m), joined)
        else:
            by_source[source] = Term(source, m, path)
    return list(by_source.values())


# ---- costs from shapes alone ------------------------------------------------------------------


def _is_selection(m: LinearMap) -> bool:
    """A pointwise map picking at most one input channel per output (a concat embedding)."""
    if not isinstance(m, ConvMap) or not m.is_pointwise:
        return False
    w = m.matrix()
    return bool(np.all(np.count_nonzero(w, axis=1) <= 1))


@dataclass
class _Sym:
    """Shape-only stand-in of a map for :func:`chain_cost` (no weights, no products)."""

    kind: str  # "conv" | "up" | "sparse"
    in_shape: Shape
    out_shape: Shape
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    pointwise: bool = False
    selection: bool = False
    nnz_per_row: float = 1.0
    scale: int = 1


def _sym(m: LinearMap) -> _Sym:
    if isinstance(m, ConvMap):
        kh, kw = m.weight.shape[2:]
        return _Sym(
            "conv",
            tuple(m.in_shape),
            tuple(m.out_shape),
            (int(kh), int(kw)),
            m.stride,
            m.dilation,
            m.groups,
            m.is_pointwise,
            _is_selection(m),
        )
    if isinstance(m, UpsampleMap):
        return _Sym("up", tuple(m.in_shape), tuple(m.out_shape), scale=m.scale)
    return _Sym("sparse", tuple(m.in_shape), tuple(m.out_shape), nnz_per_row=m.matrix.nnz / max(1, m.matrix.shape[0]))


def _sym_reduce(chain: Chain) -> list[_Sym]:
    """:func:`reduce_chain` on shapes: the same moves (1×1 maps inward past upsamplings, 1×1
    maps merged into their conv neighbours), so the same number of items is left."""
    items = [_sym(m) for m in chain]
    changed = True
    while changed:
        changed = False
        for i in range(len(items) - 1):
            a, b = items[i], items[i + 1]
            if a.kind == "conv" and a.pointwise and b.kind == "up":
                low = _Sym("conv", b.in_shape, (a.out_shape[0], *b.in_shape[1:]), pointwise=True, selection=a.selection)
                items[i : i + 2] = [_Sym("up", low.out_shape, a.out_shape, scale=b.scale), low]
                changed = True
            elif a.kind == "conv" and b.kind == "conv" and (a.pointwise or b.pointwise):
                geo = b if a.pointwise else a
                items[i : i + 2] = [
                    _Sym(
                        "conv",
                        b.in_shape,
                        a.out_shape,
                        geo.kernel,
                        geo.stride,
                        geo.dilation,
                        1,
                        a.pointwise and b.pointwise,
                        a.selection and b.selection,
                    )
                ]
                changed = True
                break
    return items


def chain_cost(chain: Chain) -> tuple[str, int]:
    """``("conv", weights)`` when a chain folds into one convolution, ``("index", outputs)`` for
    a nearest upsampling of a channel selection (a one-hot map), else ``("sparse", nnz)`` with
    nnz the unrolled matrix's size, estimated from the receptive field. Works on shapes only."""
    items = _sym_reduce(chain)
    if len(items) == 1:
        m = items[0]
        if m.kind == "conv":
            return "conv", int(m.out_shape[0] * m.in_shape[0] // max(1, m.groups) * m.kernel[0] * m.kernel[1])
        if m.kind == "sparse":
            return "sparse", int(np.prod(m.out_shape) * m.nnz_per_row)
        return "index", int(np.prod(m.out_shape))
    if all(m.kind == "up" or (m.kind == "conv" and m.selection) for m in items):
        return "index", int(np.prod(items[0].out_shape))
    n_out = int(np.prod(items[0].out_shape))
    rh = rw = 1
    per = 1.0
    chans = items[0].out_shape[0]
    for m in items:
        if m.kind == "conv":
            (kh, kw), (sh, sw), (dh, dw) = m.kernel, m.stride, m.dilation
            rh, rw = (rh - 1) * sh + (kh - 1) * dh + 1, (rw - 1) * sw + (kw - 1) * dw + 1
            chans = m.in_shape[0] if m.groups == 1 else m.in_shape[0] // m.groups
        elif m.kind == "up":
            rh, rw = (rh - 1) // m.scale + 2 if rh > 1 else 1, (rw - 1) // m.scale + 2 if rw > 1 else 1
            chans = m.in_shape[0]
        else:
            per *= m.nnz_per_row
            rh = rw = 1
            chans = 1
    n_in = int(np.prod(items[-1].in_shape))
    return "sparse", int(n_out * min(n_in, rh * rw * chans * per))


def merged_cost(chains: list[Chain]) -> tuple[str, int]:
    """Form and size of the one group that chains from one source merge into (shapes only)."""
    costs = [chain_cost(c) for c in chains]
    if len(costs) == 1 and costs[0][0] == "index":
        return costs[0]
    if all(f == "conv" for f, _ in costs):
        if len(chains) == 1:
            return costs[0]
        syms = [_sym_reduce(c)[0] for c in chains]
        first = syms[0]
        if all(m.stride == first.stride and m.dilation == first.dilation and m.groups == 1 for m in syms):
            # one source on several paths: add_maps embeds the smaller kernels (same-padded convs)
            kh = max(m.kernel[0] for m in syms)
            kw = max(m.kernel[1] for m in syms)
            return "conv", int(first.out_shape[0] * first.in_shape[0] * kh * kw)
        n_out = int(np.prod(first.out_shape))
        return "sparse", sum(n_out * m.in_shape[0] * m.kernel[0] * m.kernel[1] for m in syms)
    return "sparse", sum(n for _, n in costs)


def chain_weights(chain: Chain) -> int:
    """Weights of a chain folded into one convolution, from the shapes alone (no products):
    out channels × in channels × the spatial kernel's size."""
    kh = kw = 1
    for m in chain:
        if isinstance(m, ConvMap) and not m.is_pointwise:
            kh, kw = m.weight.shape[2:]
        elif not isinstance(m, ConvMap):
            return chain_cost(chain)[1]
    return int(chain[0].out_shape[0] * chain[-1].in_shape[0] * kh * kw)
