"""Linear maps between populations: how every linear IR op folds into synapse groups.

On Loihi only neuron populations hold state and only synapse groups (one hop each) carry
values between them. Every op of the IR that is linear on its inputs (``Conv2d``, ``Affine``,
``Add``, ``Concat``, ``Upsample``) is therefore folded into the synapse groups that feed the
next population: each population's input current is

    I_P = Σ_t  map_t(output of source_t) + bias_P

with one term per source population (LIF spikes, the graded output of a custom or host
population, or the input image), ``map_t`` the composition of the linear ops on the way, and
``bias_P`` the composed biases (per neuron: a conv of a per-channel bias differs at borders).
Concat becomes per-source terms (DESIGN.md §8), Add becomes several terms into one ``a_in``,
nearest upsampling and any composition that is not a convolution become sparse matrices, and a
1×1 convolution of a current folds into the convolutions that built the current.

This module is the algebra (float64, exact in exact arithmetic) used by the quantize pass; it is
not a pass itself. :func:`expand_fanin` is the entry point.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ..errors import PassError
from ..ir import LIF, Add, Affine, Concat, Conv2d, Graph, Input, Kind, MaxPool2d, Readout, SiLUNeuron, Upsample
from ..ir.ops.base import Shape

__all__ = [
    "ConvMap",
    "Fanin",
    "LinearMap",
    "SparseMap",
    "Term",
    "add_maps",
    "chain_cost",
    "choose_cuts",
    "apply_map",
    "compose",
    "expand_fanin",
    "identity",
    "is_population",
    "to_sparse",
]


@dataclass
class ConvMap:
    """A cross-correlation (PyTorch convention), float64 weights ``(O, I/groups, kH, kW)``."""

    weight: np.ndarray
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

    def full_weight(self) -> np.ndarray:
        """The weight with groups expanded to a block-diagonal ``(O, I, kH, kW)`` kernel."""
        if self.groups == 1:
            return self.weight
        o, ig, kh, kw = self.weight.shape
        og = o // self.groups
        full = np.zeros((o, ig * self.groups, kh, kw))
        for g in range(self.groups):
            full[g * og : (g + 1) * og, g * ig : (g + 1) * ig] = self.weight[g * og : (g + 1) * og]
        return full

    def matrix(self) -> np.ndarray:
        """``(O, I)`` channel matrix of a pointwise map."""
        return self.full_weight()[:, :, 0, 0]

    def is_identity(self) -> bool:
        if not self.is_pointwise or self.in_shape != self.out_shape:
            return False
        return bool(np.array_equal(self.matrix(), np.eye(self.in_shape[0])))


@dataclass
class SparseMap:
    """Any linear map as a CSR matrix ``(N_out, N_in)``, both sides flattened in (C, H, W) order."""

    matrix: sp.csr_matrix
    in_shape: Shape
    out_shape: Shape


@dataclass
class UpsampleMap:
    """Nearest-neighbour upsampling by ``scale``. Kept symbolic because it commutes with
    channel mixing: the expansion moves 1×1 maps past it so they merge with convolutions."""

    scale: int
    in_shape: Shape
    out_shape: Shape


LinearMap = ConvMap | SparseMap | UpsampleMap


def identity(shape: Shape) -> ConvMap:
    return pointwise(np.eye(shape[0]), shape)


def pointwise(matrix: np.ndarray, in_shape: Shape) -> ConvMap:
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


_WEIGHTS64: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # op -> float64 weight (expanded often)


def conv_map(op: Conv2d, in_shape: Shape) -> ConvMap:
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


def _embed_kernel(small: ConvMap, big: ConvMap) -> np.ndarray | None:
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


def apply_map(m: LinearMap, x: np.ndarray | torch.Tensor) -> torch.Tensor:
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


@dataclass
class Term:
    """One synapse group into a population: ``map`` applied to ``source``'s output each step.

    ``path`` lists the linear IR nodes the value went through (for the mapping report)."""

    source: str
    map: LinearMap
    path: tuple[str, ...] = ()
    hops: tuple[str, ...] = ()  # while a chain: the IR node of each map, outermost first


@dataclass
class Fanin:
    """A population's input current: the sum of its terms plus a per-neuron float bias."""

    terms: list[Term] = field(default_factory=list)
    bias: np.ndarray | None = None  # (C, H, W) float64


def is_population(graph: Graph, name: str) -> bool:
    """Ops that become a population (or, for Input, a source) rather than a synapse term."""
    return isinstance(graph[name].op, (Input, LIF, SiLUNeuron, MaxPool2d, Readout))


def _map_terms(fanin: Fanin, m: LinearMap, node: str) -> list[Term]:
    # Maps stay chains (outermost first) until the population collapses them, so products
    # are formed from the destination side, where the matrices have the fewest rows.
    return [Term(t.source, (m, *t.map), (*t.path, node), (node, *t.hops)) for t in fanin.terms]  # type: ignore[arg-type]


def _bias_through(m: LinearMap, bias: np.ndarray | None) -> np.ndarray | None:
    if bias is None:
        return None
    return apply_map(m, bias[None]).numpy()[0]


def _add_bias(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _mergeable(a: LinearMap, b: LinearMap) -> bool:
    return isinstance(a, ConvMap) and isinstance(b, ConvMap) and (a.is_pointwise or b.is_pointwise)


def _collapse(chain: tuple[LinearMap, ...]) -> LinearMap:
    """Compose a chain (outermost first) cheaply: move 1×1 maps inward past upsamplings (they
    commute), merge convolutions with their 1×1 neighbours, then multiply the rest from the
    destination side. The result is the same linear map whatever the order."""
    items = _reduce(chain)
    acc = items[0]
    for m in items[1:]:
        acc = compose(acc, m)
    return acc


def _reduce(chain: tuple[LinearMap, ...]) -> list[LinearMap]:
    """The cheap part of :func:`_collapse`: what is left to multiply (one item: a single map)."""
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
        return _Sym(
            "conv",
            tuple(m.in_shape),
            tuple(m.out_shape),
            tuple(m.weight.shape[2:]),
            m.stride,
            m.dilation,
            m.groups,
            m.is_pointwise,
            _is_selection(m),
        )
    if isinstance(m, UpsampleMap):
        return _Sym("up", tuple(m.in_shape), tuple(m.out_shape), scale=m.scale)
    return _Sym("sparse", tuple(m.in_shape), tuple(m.out_shape), nnz_per_row=m.matrix.nnz / max(1, m.matrix.shape[0]))


def _sym_reduce(chain: tuple[LinearMap, ...]) -> list[_Sym]:
    """:func:`_reduce` on shapes: the same moves (1×1 maps inward past upsamplings, 1×1 maps
    merged into their conv neighbours), so the same number of items is left."""
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


def chain_cost(chain: tuple[LinearMap, ...]) -> tuple[str, int]:
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


def _merge(terms: list[Term]) -> list[Term]:
    """Collapse each chain; one term per source (maps from the same source are summed: exact,
    and fewer processes)."""
    by_source: dict[str, Term] = {}
    for t in terms:
        m = _collapse(t.map)  # type: ignore[arg-type]
        if t.source in by_source:
            prev = by_source[t.source]
            path = tuple(dict.fromkeys((*prev.path, *t.path)))
            by_source[t.source] = Term(t.source, add_maps(prev.map, m), path)
        else:
            by_source[t.source] = Term(t.source, m, t.path)
    return list(by_source.values())


def expand_fanin(
    graph: Graph, cuts: frozenset[str] | set[str] = frozenset(), collapse: bool = True
) -> dict[str, Fanin]:
    """The input current of every population (LIF, SiLU, Readout, MaxPool2d) as terms.

    Sources are the Input and the populations with a per-step output (everything but Readout).
    A max-pool of spikes gets the all-ones window synapse (it becomes a LIF with threshold 0);
    a max-pool of currents gets the current itself (it becomes a custom or host population).

    ``cuts`` are current-valued linear nodes carried by relay populations: each is a source for
    the nodes that read it and gets its own entry (its value expanded as terms plus bias).
    ``collapse=False`` leaves each term's maps as a chain (outermost first, ``Term.hops`` naming
    each map's node) and terms unmerged: what :func:`choose_cuts` inspects before building.
    """
    memo: dict[str, Fanin] = {}

    def value(name: str) -> Fanin:
        if name in memo:
            return memo[name]
        node = graph[name]
        op, shape = node.op, graph.shape(name)
        if isinstance(op, (Input, LIF, SiLUNeuron, MaxPool2d)) or name in cuts:
            out = Fanin([Term(name, (identity(shape),), (), (name,))], None)  # type: ignore[arg-type]
        else:
            out = own(name)
        memo[name] = out
        return out

    def own(name: str) -> Fanin:
        node = graph[name]
        op, shape = node.op, graph.shape(name)
        if isinstance(op, Conv2d):
            inner = value(node.inputs[0])
            m = conv_map(op, graph.shape(node.inputs[0]))
            bias = _bias_through(m, inner.bias)
            if op.bias is not None:
                bias = _add_bias(bias, np.broadcast_to(op.bias.astype(np.float64).reshape(-1, 1, 1), shape).copy())
            out = Fanin(_map_terms(inner, m, name), bias)
        elif isinstance(op, Affine):
            inner = value(node.inputs[0])
            m = pointwise(np.diag(op.scale.astype(np.float64)), graph.shape(node.inputs[0]))
            bias = _bias_through(m, inner.bias)
            shift = np.broadcast_to(op.shift.astype(np.float64).reshape(-1, 1, 1), shape).copy()
            out = Fanin(_map_terms(inner, m, name), _add_bias(bias, shift))
        elif isinstance(op, Add):
            terms: list[Term] = []
            bias = None
            for i in node.inputs:
                v = value(i)
                terms += [Term(t.source, t.map, (*t.path, name), t.hops) for t in v.terms]
                bias = _add_bias(bias, v.bias)
            out = Fanin(terms, bias)
        elif isinstance(op, Concat):
            terms, parts, offset = [], [], 0
            total = shape[0]
            for i in node.inputs:
                c_in = graph.shape(i)[0]
                embed = np.zeros((total, c_in))
                embed[offset : offset + c_in] = np.eye(c_in)
                v = value(i)
                m = pointwise(embed, graph.shape(i))
                terms += _map_terms(v, m, name)
                parts.append(np.zeros(graph.shape(i)) if v.bias is None else v.bias)
                offset += c_in
            has_bias = any(value(i).bias is not None for i in node.inputs)
            out = Fanin(terms, np.concatenate(parts) if has_bias else None)
        elif isinstance(op, Upsample):
            inner = value(node.inputs[0])
            m = upsample_map(op.scale, graph.shape(node.inputs[0]))
            out = Fanin(_map_terms(inner, m, name), _bias_through(m, inner.bias))
        else:
            raise PassError(
                f"{name} ({op.type_name}): no linear lowering to synapse groups; "
                "linear ops: Conv2d, Affine, Add, Concat, Upsample; populations: LIF, SiLUNeuron, MaxPool2d, Readout"
            )
        return out

    merge = _merge if collapse else (lambda terms: terms)
    result: dict[str, Fanin] = {}
    for node in graph:
        op = node.op
        if node.name in cuts:
            fi = own(node.name)
            result[node.name] = Fanin(merge(fi.terms), fi.bias)
        elif isinstance(op, (LIF, SiLUNeuron, Readout)):
            terms, bias = [], None
            for i in node.inputs:
                v = value(i)
                terms += v.terms
                bias = _add_bias(bias, v.bias)
            result[node.name] = Fanin(merge(terms), bias)
        elif isinstance(op, MaxPool2d):
            src = node.inputs[0]
            v = value(src)
            if graph.kind(src) == Kind.SPIKE:
                m = window_map(op.kernel, graph.shape(src))  # stride k, no padding: floor(H/k) like the pool
                result[node.name] = Fanin(merge(_map_terms(v, m, node.name)), None)
            else:
                result[node.name] = Fanin(merge(v.terms), v.bias)
    return result


def _source_cost(terms: list[Term]) -> tuple[str, int]:
    """Form and size of the one group that the terms of one source merge into."""
    costs = [chain_cost(t.map) for t in terms]  # type: ignore[arg-type]
    if len(costs) == 1 and costs[0][0] == "index":
        return costs[0]
    if all(f == "conv" for f, _ in costs):
        if len(terms) == 1:
            return costs[0]
        syms = [_sym_reduce(t.map)[0] for t in terms]  # type: ignore[arg-type]
        first = syms[0]
        if all(m.stride == first.stride and m.dilation == first.dilation and m.groups == 1 for m in syms):
            # one source on several paths: add_maps embeds the smaller kernels (same-padded convs)
            kh = max(m.kernel[0] for m in syms)
            kw = max(m.kernel[1] for m in syms)
            return "conv", int(first.out_shape[0] * first.in_shape[0] * kh * kw)
        n_out = int(np.prod(first.out_shape))
        return "sparse", sum(n_out * m.in_shape[0] * m.kernel[0] * m.kernel[1] for m in syms)
    return "sparse", sum(n for _, n in costs)


def _cut_for(graph: Graph, term: Term, limit: int) -> str | None:
    """The node to carry by a relay so that ``term``'s chain stops unrolling: the value read by
    the innermost op at which the chain stops being a convolution and grows past ``limit``."""
    chain = term.map  # outermost first
    for j in range(len(chain) - 1, -1, -1):
        form, nnz = chain_cost(chain[j:])  # type: ignore[arg-type]
        if form == "sparse" and nnz > limit:
            breaking = term.hops[j]
            k = term.path.index(breaking) if breaking in term.path else -1
            if k <= 0:
                return None  # the op reads the source itself: nothing to cut
            cut = term.path[k - 1]
            if isinstance(graph[cut].op, Concat) and k >= 2:
                cut = term.path[k - 2]  # relay the concatenated part, not the whole concat
            return cut
    return None


def choose_cuts(graph: Graph, limit: int) -> dict[str, str]:
    """Current-valued nodes to carry by relays (name -> why) so that no synapse group unrolls
    into a matrix of more than ``limit`` synapses where a weight-shared form exists.

    Greedy: expand the fan-in without building matrices, take every source whose merged group
    would be a matrix above ``limit``, cut the value its chain unrolls at (:func:`_cut_for`),
    repeat. The old folding stays wherever it is a convolution or a matrix within ``limit``.
    Then, while folding copies the convolutions of shortcut sums into their readers so often
    that the chip would hold more than ``DUPLICATION_MAX`` times the model's weights, relay the
    currents whose copies cost most (:func:`_duplication_cuts`)."""
    cuts: dict[str, str] = {}
    model_weights = sum(int(n.op.weight.size) for n in graph if isinstance(n.op, Conv2d))
    for _ in range(len(graph)):
        fanins = expand_fanin(graph, frozenset(cuts), collapse=False)
        new: dict[str, str] = {}
        for pop, fi in fanins.items():
            by_source: dict[str, list[Term]] = {}
            for t in fi.terms:
                by_source.setdefault(t.source, []).append(t)
            for src, terms in by_source.items():
                form, nnz = _source_cost(terms)
                if form != "sparse" or nnz <= limit:
                    continue
                for t in sorted(terms, key=lambda t: -chain_cost(t.map)[1]):  # type: ignore[arg-type]
                    cut = _cut_for(graph, t, limit)
                    if cut is not None and cut not in cuts:
                        new.setdefault(
                            cut, f"folded, {pop}<-{src} would be a {nnz}-synapse matrix (> {limit}); relayed at {cut}"
                        )
                        break
        if not new:
            folded = sum(_chain_weights(t.map) for fi in fanins.values() for t in fi.terms)  # type: ignore[arg-type]
            if folded <= DUPLICATION_MAX * model_weights:
                return cuts
            new = _duplication_cuts(graph, fanins, cuts, limit)
            if not new:
                return cuts
        cuts.update(new)
    return cuts


DUPLICATION_MAX = 2.0  # folded weights allowed, in model weights, before shortcut sums are relayed


def _chain_weights(chain: tuple[LinearMap, ...]) -> int:
    """Weights of a chain folded into one convolution, from the shapes alone (no products):
    out channels × in channels × the spatial kernel's size."""
    kh = kw = 1
    for m in chain:
        if isinstance(m, ConvMap) and not m.is_pointwise:
            kh, kw = m.weight.shape[2:]
        elif not isinstance(m, ConvMap):
            return chain_cost(chain)[1]
    return int(chain[0].out_shape[0] * chain[-1].in_shape[0] * kh * kw)


def _duplication_cuts(graph: Graph, fanins: dict[str, Fanin], cuts: dict[str, str], limit: int) -> dict[str, str]:
    """Currents whose folding copies the most weights: folding a shortcut sum into every
    population that reads it (directly or through later sums) copies the convolutions that
    built it into each, so weights grow with depth (quadratically along a ResNet stage). A relay
    holds them once; its readers get one small group each. Returns the cuts (node -> why) that
    save more than ``limit`` weights each, largest first, at most one per folded term."""
    per: dict[str, dict[str, int]] = {}
    users: dict[str, set[int]] = {}
    tid = 0
    for pop, fi in fanins.items():
        for t in fi.terms:
            tid += 1
            w = _chain_weights(t.map)  # type: ignore[arg-type]
            for v in set(t.path):
                if v in cuts or v == pop or graph.kind(v) != Kind.CURRENT:
                    continue
                if isinstance(graph[v].op, (Concat, Upsample)):
                    continue  # relays of these go through choose_cuts' unrolling rule
                per.setdefault(v, {}).setdefault(pop, 0)
                per[v][pop] += w
                users.setdefault(v, set()).add(tid)
    savings = []
    for v, readers in per.items():
        if len(readers) < 2:
            continue
        c = graph.shape(v)
        saving = sum(readers.values()) - max(readers.values()) - int(np.prod(c)) - len(readers) * c[0] * c[0]
        if saving > limit:
            savings.append((saving, v))
    chosen: dict[str, str] = {}
    taken: set[int] = set()
    for saving, v in sorted(savings, reverse=True):
        if users[v] & taken:
            continue  # its terms change once the bigger cut is made: decide next round
        taken |= users[v]
        chosen[v] = (
            f"duplicated, {len(per[v])} populations would each hold a copy of the convolutions that "
            f"build {v} (about {int(saving)} weights saved by one relay)"
        )
    return chosen
