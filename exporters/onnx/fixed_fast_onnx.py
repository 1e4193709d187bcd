"""Fast exact lowerings of the Loihi fixed-point ops: small integers carried in float32/float64.

The integer lowerings of :mod:`fixed_kernels_onnx` are exact for any input but slow on CPUs
(onnxruntime's int64 ``MatMul`` has no BLAS kernel; its integer ``Mod`` and ``Div`` are scalar
loops). Here every value carries a proven bound on its magnitude, derived from the weights,
the fan-in, the profile's wraps and saturations and a bound on the quantized input, and is held
in the cheapest float type that holds every integer up to that bound exactly: float32 below
2**24, float64 below 2**53. Then ``+``, ``−``, ``×`` of such integers, ``×`` by a power of two
and ``Floor`` are exact, and so is a ``Conv`` / ``MatMul`` whose every partial sum is bounded by
Σ|w|·|x| below the same limit (:func:`conv_sum_bound`). A wrap whose operand provably lies in
range is a no-op and is not emitted; one that may fire is ``x − 2^bits·⌊(x + half)/2^bits⌋``;
a floor shift is ``⌊x · 2^−r⌋``; Lava's truncating decay is the float product cast to int32
(onnxruntime's ``Cast`` truncates toward zero, as C++ does).

A bound that exceeds 2**53 raises :class:`UnboundedError`: the exporter then writes the integer graph
alone. The input bound is an assumption checked at run time (fixed.py: an ``If`` takes the
integer graph for a step whose quantized input exceeds it), so the graph is exact for every input.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emsdeploy.ir import Kind, Node
from emsdeploy.ir.ops import loihi

from .fixed_kernels_onnx import (
    BOOL,
    DEFAULT_SPIKE_KERNEL,
    F32,
    F64,
    FLOAT_EXACT,
    I32,
    I64,
    SPIKE_CONV_KERNELS,
    U8,
    FixedBuilder,
    Value,
    _conv_attrs,
    gathered_matmul_integer,
    padded_maxpool,
    spike_conv_bound,
)

__all__ = ["FAST_LOWERINGS", "FAST_TERM_LOWERINGS", "UnboundedError", "fast_input"]

F64_EXACT = 1 << 53  # float64 holds every integer below this exactly
INT32_LIMIT = 1 << 31


class UnboundedError(Exception):
    """A value of this graph has no bound below 2**53: the fast graph cannot be proven exact."""


def _elem(bound: int, where: str, grain: int = 0) -> int:
    """The cheapest float type holding every multiple of 2^grain up to ``bound`` exactly."""
    if bound < FLOAT_EXACT << grain:
        return F32
    if bound < F64_EXACT << grain:
        return F64
    raise UnboundedError(f"{where}: |value| <= {bound} is not below 2^53")


def _fl(b: FixedBuilder, v: Value, elem: int) -> str:
    """``v`` as float ``elem`` (spikes and int32 counts convert exactly)."""
    return b.cast(v, elem).name


def _const_f(b: FixedBuilder, value, elem: int) -> str:
    return b.const(np.asarray(value, np.float64), elem)


def fast_input(b: FixedBuilder, xq: str, bound: int) -> Value:
    """The quantized input ``rint(x · scale)`` (float64, computed by the exporter), |x_q| <= bound."""
    return Value(xq, F64, bound)


def _bound(v: Value, hint: str) -> int:
    """``v``'s proven bound (every value of the fast lowering has one)."""
    if v.bound is None:
        raise UnboundedError(f"{hint}: a value without a proven bound")
    return v.bound


def wrap(b: FixedBuilder, v: Value, bits: int, hint: str) -> Value:
    """Two's-complement wrap to ``bits``; a no-op (not emitted) when |v| < 2^(bits−1)."""
    half = 1 << (bits - 1)
    if _bound(v, hint) < half:
        return v
    elem = _elem(_bound(v, hint) + half, hint)
    x = _fl(b, v, elem)
    k = b.op("Floor", [b.op("Mul", [b.op("Add", [x, _const_f(b, half, elem)], f"{hint}/wrap"),
                                    _const_f(b, 2.0**-bits, elem)], f"{hint}/wrap")], f"{hint}/wrap")  # fmt: skip
    y = b.op("Sub", [x, b.op("Mul", [k, _const_f(b, 2.0**bits, elem)], f"{hint}/wrap")], f"{hint}/wrap")
    return Value(y, elem, half)


def floor_shift(b: FixedBuilder, v: Value, r: int, hint: str, offset: int = 0) -> Value:
    """⌊(v + offset) / 2^r⌋ (exact: a power-of-two scaling and a floor of a float integer)."""
    if r == 0 and offset == 0:
        return v
    elem = _elem(_bound(v, hint) + abs(offset), hint)
    x = _fl(b, v, elem)
    if offset:
        x = b.op("Add", [x, _const_f(b, offset, elem)], f"{hint}/round")
    y = b.op("Floor", [b.op("Mul", [x, _const_f(b, 2.0**-r, elem)], f"{hint}/shift")], f"{hint}/shift")
    bound = -(-(_bound(v, hint) + abs(offset)) // (1 << r))
    return narrow(b, Value(y, elem, bound))


def narrow(b: FixedBuilder, v: Value) -> Value:
    """float64 → float32 when the bound allows (halves the memory traffic of what follows)."""
    if v.elem == F64 and v.bound < FLOAT_EXACT << v.grain:  # type: ignore[operator]
        return b.cast(v, F32)
    return v


def add(b: FixedBuilder, values: Sequence[Value], hint: str) -> Value:
    """Σ values, exact: every partial sum is a multiple of 2^(the smallest grain) below the bound.

    Terms that fill disjoint channel blocks covering every channel (a concatenation's parts) are
    summed per block and joined with one ``Concat``; otherwise a placed term is padded first."""
    bound = sum(v.bound for v in values)  # type: ignore[misc]
    grain = min(v.grain for v in values)
    elem = _elem(bound, hint, grain)
    blocks = channel_blocks(values)
    if blocks is not None:
        parts = [add(b, part, hint) for part in blocks]
        y = b.op("Concat", [_fl(b, v, elem) for v in parts], f"{hint}/concat", axis=1)
        return Value(y, elem, bound, grain)
    values = [_unplace(b, v, hint) for v in values]
    total_name = _fl(b, values[0], elem)
    for v in values[1:]:
        total_name = b.op("Add", [total_name, _fl(b, v, elem)], f"{hint}/sum")
    return Value(total_name, elem, bound, grain)


def channel_blocks(values: Sequence[Value]) -> list[list[Value]] | None:
    """The terms grouped by the disjoint channel blocks they fill, in channel order (placement
    dropped), when such blocks cover every channel; None otherwise."""
    placed = [v for v in values if v.place is not None]
    if not placed:
        return None
    total = placed[0].place[2]  # type: ignore[index]
    blocks: dict[tuple[int, int], list[Value]] = {}
    for v in values:
        blocks.setdefault(v.place[:2] if v.place else (0, total), []).append(v)
    spans = sorted(blocks)
    if (
        (0, total) in blocks
        or spans[0][0] != 0
        or sum(n for _, n in spans) != total
        or any(f0 + n0 != f1 for (f0, n0), (f1, _) in itertools.pairwise(spans))
    ):
        return None
    return [[dataclasses.replace(v, place=None) for v in blocks[s]] for s in spans]


def _unplace(b: FixedBuilder, v: Value, hint: str) -> Value:
    """A placed term as the whole value (zeros outside its channels, ``Pad``)."""
    if v.place is None:
        return v
    first, count, total = v.place
    pads = b.const([0, first, 0, 0, 0, total - first - count, 0, 0], I64)
    return dataclasses.replace(v, name=b.op("Pad", [v.name, pads], f"{hint}/place"), place=None)


def _trunc_decay(b: FixedBuilder, v: str, keep: int, shift: int, bound: int, hint: str) -> Value:
    """trunc0(v · keep / 2^shift) for a float32 state |v| <= bound < 2^24 (Lava's decay)."""
    if keep == 1 << shift:
        return Value(v, F32, bound)
    if keep == 0:
        return Value(b.op("Mul", [v, _const_f(b, 0.0, F32)], f"{hint}/zero"), F32, 0)
    out = bound * keep >> shift
    j = keep.bit_length() - 1
    if keep == 1 << j:  # v · 2^(j − shift) is exact in float32
        y = b.op("Mul", [v, _const_f(b, 2.0 ** (j - shift), F32)], f"{hint}/decay")
    else:  # |v · keep| < 2^36: exact in float64
        y = b.op("Mul", [b.op("Cast", [v], f"{hint}/f64", to=F64), _const_f(b, keep / (1 << shift), F64)],
                 f"{hint}/decay")  # fmt: skip
    t = b.op("Cast", [y], f"{hint}/trunc", to=I32)  # truncates toward zero
    return Value(b.op("Cast", [t], f"{hint}/f32", to=F32), F32, out)


# --- synapse groups and host terms -----------------------------------------------------------


def conv_sum_bound(weight: np.ndarray, x_bound: int) -> int:
    """max over outputs of Σ|w|·|x|: bounds every partial sum of that output's convolution."""
    w = np.abs(weight.astype(np.int64))
    return int(w.reshape(w.shape[0], -1).sum(1).max()) * x_bound if w.size else 0


def _float_conv(b: FixedBuilder, hint: str, x: Value, weight: np.ndarray, op, bound: int, r: int = 0) -> Value:
    """2^−r · Σ w·x as one float convolution: float32 ``Conv`` when every partial sum |Σ| <= bound
    is below 2^24, float64 im2col + ``MatMul`` below 2^53. Scaling the weights by 2^−r keeps every
    partial sum exact (a multiple of 2^−r with the same significant bits)."""
    elem = _elem(bound, hint)
    w = weight.astype(np.float64) * 2.0**-r
    if elem == F32:
        acc = b.op("Conv", [_fl(b, x, F32), b.const(w, F32)], f"{hint}/conv", **_conv_attrs(op))
        return Value(acc, F32, bound)
    from .fixed_kernels_onnx import _im2col_matmul

    shape = b.graph.shape(b.graph[hint].inputs[0])
    return Value(_im2col_matmul(b, hint, _fl(b, x, F64), weight, shape, op, elem=F64, scale=2.0**-r), F64, bound)


def _row_sums(data: np.ndarray, indptr: np.ndarray) -> int:
    sums = np.zeros(len(indptr) - 1, np.int64)
    np.add.at(sums, np.repeat(np.arange(sums.size), np.diff(indptr)), np.abs(data.astype(np.int64)))
    return int(sums.max()) if sums.size else 0


def _float_sparse(b: FixedBuilder, hint: str, x: Value, data, indices, indptr, in_shape, out_shape, e: int,
                  bound: int, placed: bool = False) -> tuple[Value, str]:  # fmt: skip
    """⌊2^e · Σ_j W_ij x_j⌋ in floats, every partial sum below ``bound``·... (see the callers)."""
    from .fixed_kernels_onnx import _sparse_matmul

    elem = _elem(bound, hint)
    block = _channel_block(indices, indptr, in_shape, out_shape)
    if block is not None:  # x placed at output channels [c0, c0 + C_in), scaled elementwise by w · 2^e
        c = data.astype(np.float64) * 2.0**e
        out_bound = -(-bound * (1 << max(e, 0)) // (1 << max(-e, 0)))
        y = x if x.elem in (F32, F64) else b.cast(x, F32)
        kind = "identity"
        if not np.all(c == 1.0):  # exact: a power-of-two rescaling of the exact product
            y = Value(
                b.op("Mul", [_fl(b, x, elem), b.bcast(c.reshape(in_shape), elem)], f"{hint}/diag"), elem, out_bound
            )
            if not np.all(c == np.round(c)):
                y = Value(b.op("Floor", [y.name], f"{hint}/floor"), elem, out_bound)
            kind = f"elementwise {elem_name(elem)}"
        after = out_shape[0] - in_shape[0] - block
        if block or after:
            y = dataclasses.replace(y, place=(block, in_shape[0], out_shape[0]))
            kind += f" placed at channels {block}..{block + in_shape[0] - 1}"
            if not placed:
                y = _unplace(b, y, hint)
                kind += " (Pad)"
        return narrow(b, y), kind
    w1 = _pointwise(data, indices, indptr, in_shape, out_shape)
    if w1 is not None:  # a 1×1 convolution over channels: one MatMul instead of a row gather
        ci, h, w = in_shape
        flat = b.op("Reshape", [_fl(b, x, elem), b.const([0, ci, h * w], I64)], f"{hint}/pix")
        mm = b.op("MatMul", [b.const(w1, elem), flat], f"{hint}/matmul")
        acc = b.op("Reshape", [mm, b.const([0, *out_shape], I64)], f"{hint}/acc")
        kind = f"1×1 channel MatMul {elem_name(elem)}"
    else:
        acc = _sparse_matmul(b, hint, _fl(b, x, elem), data, indices, indptr, in_shape, out_shape, elem=elem)
        kind = f"row gather + sum {elem_name(elem)}"
    v = Value(acc, elem, bound)
    if e > 0:
        return Value(b.op("Mul", [acc, _const_f(b, 2.0**e, elem)], f"{hint}/exp"), elem, bound << e), kind
    return floor_shift(b, v, -e, hint), kind


def _pointwise(data, indices, indptr, in_shape, out_shape) -> np.ndarray | None:
    """W [C_out, C_in] when the matrix is exactly a 1×1 convolution over channels (every output
    pixel reads the same pixel of the input with weights that depend on the channels only)."""
    (ci, h, w), (co, ho, wo) = tuple(in_shape), tuple(out_shape)
    if (h, w) != (ho, wo) or co * ci > 1 << 20 or not indices.size:
        return None
    rows = np.repeat(np.arange(co * h * w), np.diff(indptr))
    o, pix = np.divmod(rows, h * w)
    c, pix_in = np.divmod(indices.astype(np.int64), h * w)
    if not np.array_equal(pix, pix_in):
        return None
    w1 = np.zeros((co, ci), np.int64)
    w1[o, c] = data
    if not np.array_equal(w1[o, c], data):  # one weight per channel pair
        return None
    # every pixel carries every nonzero channel pair exactly once
    pairs = np.count_nonzero(w1)
    nz = data != 0
    if np.count_nonzero(nz) != pairs * h * w:
        return None
    key = (o[nz] * ci + c[nz]) * (h * w) + pix[nz]
    return w1 if np.unique(key).size == key.size else None


def _channel_block(indices, indptr, in_shape, out_shape) -> int | None:
    """c0 when the matrix maps source j to output row c0·H·W + j, one entry per row, nothing else
    (an identity, a channel scaling, or a concatenation's placement); None otherwise."""
    (ci, h, w), (co, ho, wo) = tuple(in_shape), tuple(out_shape)
    n_in = ci * h * w
    if (h, w) != (ho, wo) or co < ci or indices.size != n_in or not np.array_equal(indices, np.arange(n_in)):
        return None
    counts = np.diff(indptr)
    rows = np.flatnonzero(counts)
    if rows.size != n_in or np.any(counts[rows] != 1) or rows[0] % (h * w) or rows[-1] - rows[0] != n_in - 1:
        return None
    return int(rows[0] // (h * w))


def elem_name(elem: int) -> str:
    names: dict[int, str] = {F32: "float32", F64: "float64", I32: "int32", I64: "int64", U8: "uint8", BOOL: "bool"}
    return names[elem]


@dataclass(frozen=True)
class PendingConv:
    """A chip conv of spikes that provably never wraps, left for its population to emit: convs of
    one population with the same geometry and exponent become one ``ConvInteger`` over their
    concatenated inputs, scaled once (by 2^e, and by the LIF's 2^6 when that is exact too)."""

    node: Node
    x: Value
    base: int  # max Σ|m| over one output's fan-in

    @property
    def bound(self) -> int:
        return self.base << self.node.op.weight_exp_s4  # type: ignore[attr-defined]


def emit_terms(b: FixedBuilder, node: Node, terms: Sequence[Value | PendingConv], shift: int = 0) -> list[Value]:
    """The population's terms as float values, each times 2^shift (the caller proves it exact)."""
    out: list[Value] = []
    groups: dict[tuple, list[PendingConv]] = {}
    for t in terms:
        if isinstance(t, PendingConv):
            op = t.node.op
            key = (op.weight_exp_s4, op.weight_s8.shape[2:], op.stride, op.padding, op.dilation,  # type: ignore[attr-defined]
                   b.graph.shape(t.node.inputs[0])[1:], id(t) if op.groups != 1 else 0)  # type: ignore[attr-defined]  # fmt: skip
            groups.setdefault(key, []).append(t)
        elif shift:
            elem = _elem(t.bound << shift, node.name, t.grain + shift)  # type: ignore[operator]
            y = b.op("Mul", [_fl(b, t, elem), _const_f(b, 2.0**shift, elem)], f"{node.name}/act")
            out.append(Value(y, elem, t.bound << shift, t.grain + shift, t.place))  # type: ignore[operator]
        else:
            out.append(t)
    for group in groups.values():
        while group:  # as many as int32 sums allow in one ConvInteger
            take, base = [], 0
            while group and base + group[0].base < INT32_LIMIT:
                base += group[0].base
                take.append(group.pop(0))
            if not take:
                take, base = [group.pop(0)], 0
                base = take[0].base
            out.append(_merged_conv(b, node, take, base, shift))
    return out


def _merged_conv(b: FixedBuilder, node: Node, group: list[PendingConv], base: int, shift: int) -> Value:
    first = group[0].node
    e = first.op.weight_exp_s4  # type: ignore[attr-defined]
    xs = [b.cast(t.x, U8).name for t in group]
    x = b.op("Concat", xs, f"{first.name}/merged", axis=1) if len(xs) > 1 else xs[0]
    w = np.concatenate([t.node.op.weight_s8 for t in group], axis=1)  # type: ignore[attr-defined]
    rows = np.flatnonzero(np.abs(w.astype(np.int64)).reshape(w.shape[0], -1).sum(1))
    place = None
    if rows.size and rows[-1] - rows[0] + 1 == rows.size < w.shape[0]:  # one block of nonzero outputs
        place = (int(rows[0]), int(rows.size), int(w.shape[0]))
        w = w[rows[0] : rows[-1] + 1]
    shape = tuple(b.graph.shape(first.inputs[0]))
    if _gathered_matmul_pays(first.op, w.shape, b.graph.shape(first.name)) and b.kernel_override is None:
        kernel = "Gather im2col + MatMulInteger u8×s8"
        acc = gathered_matmul_integer(b, x, w, (w.shape[1], *shape[1:]), first.op, f"{first.name}/mmi")
    else:
        kernel = "ConvInteger"
        wq = b.const((w.astype(np.int16) + 128).astype(np.uint8), U8)
        acc = b.op("ConvInteger", [x, wq, "", b.const(np.uint8(128), U8)], f"{first.name}/convint",
                   **_conv_attrs(first.op))  # fmt: skip
    bound = base << (e + shift)
    elem = _elem(bound, node.name, e + shift)  # the int32 sum (exact below 2^24) times a power of two
    # Cast then a power-of-two Mul, both exact. Never DequantizeLinear, though it is one pass:
    # onnxruntime's QDQ propagation (basic optimisation level and up) wraps the op after a
    # DequantizeLinear (a MaxPool, Reshape, Slice, ...) in a QuantizeLinear/DequantizeLinear pair
    # of uint8, clipping the int32 sums to 0..255 (microsoft/onnxruntime#27845; caught by
    # tests/exporters/onnx/test_fixed.py's padded max-pool case).
    y = b.op("Cast", [acc], f"{first.name}/f", to=elem)
    if e + shift:
        y = b.op("Mul", [y, _const_f(b, 2.0 ** (e + shift), elem)], f"{first.name}/exp")
    names = [t.node.name for t in group]
    only = f", output channels {place[0]}..{place[0] + place[1] - 1} only (the rest has no weight)" if place else ""
    for t in group:
        others = f", one {kernel} with {len(names) - 1} more of {node.name}'s inputs" if len(names) > 1 else ""
        b.kernels[t.node.name] = (f"{kernel} (|Σm·s| <= {t.base}; no wrap: |Σm·2^e·s| <= {t.bound}){others}, "
                                  f"int32 sum <= {base} < 2^31, then {elem_name(elem)}{only}")  # fmt: skip
    return narrow(b, Value(y, elem, bound, e + shift, place))


def _gathered_matmul_pays(op, w_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Where the gathered ``MatMulInteger`` beats ``ConvInteger`` (onnxruntime 1.23.2, one thread,
    a Xeon with AVX-512 VNNI and AMX; docs/onnx.md's per-layer table, from bench/onnx_fixed.py):
    spatial, ungrouped convs with at least 32 input channels (narrower ones gather rows too short
    to pay) and a small output: at most 20×20 pixels (1.2–3× faster), 40×40 with at most 128
    channels, or 80×80 with at most 32 (64→32 3×3 at 80×80: 0.88 vs 1.32 ms). ``ConvInteger``
    keeps 1×1 convs and wide, large outputs (128 channels at 80×80: 0.87 vs 3.2 ms)."""
    out_c, in_c = int(w_shape[0]), int(w_shape[1])
    pixels = int(out_shape[1]) * int(out_shape[2])
    if op.groups != 1 or tuple(w_shape[2:]) == (1, 1) or in_c < 32:
        return False
    return pixels <= 400 or (pixels <= 1600 and out_c <= 128) or (pixels <= 6400 and out_c <= 32)


def _syn_conv(b: FixedBuilder, node: Node, x: Value) -> Value | PendingConv:
    op: loihi.SynConv = node.op  # type: ignore[assignment]
    e = op.weight_exp_s4
    bits = b.p["sparse_accumulator_bits"] if op.delay_u6 else b.p["conv_accumulator_bits"]
    if b.graph.kind(node.inputs[0]) == Kind.SPIKE:
        base = spike_conv_bound(op)
        kernel = b.kernel_override or DEFAULT_SPIKE_KERNEL
        if kernel == "ConvInteger" and base << e < 1 << (bits - 1):
            return PendingConv(node, x, base)
        if kernel == "float-Conv" and base >= FLOAT_EXACT:
            kernel = "ConvInteger"
        acc = Value(SPIKE_CONV_KERNELS[kernel](b, node, x), I32, base)
        bound = base << e
        elem = _elem(bound, node.name)
        out = b.cast(acc, elem)
        if e:
            out = Value(b.op("Mul", [out.name, _const_f(b, 2.0**e, elem)], f"{node.name}/exp"), elem, bound)
        b.kernels[node.name] = f"{kernel} (|Σm·s| <= {base}), {elem_name(elem)} (|Σm·2^e·s| <= {bound})"
        return narrow(b, wrap(b, Value(out.name, elem, bound), bits, node.name))
    # graded integers: Σ x·(m·2^e), wrapped to 24 bits (Lava's Conv with message bits)
    w = op.effective_weight()
    bound = conv_sum_bound(w, x.bound)  # type: ignore[arg-type]
    acc = _float_conv(b, node.name, x, w, op, bound)
    kind = "float32 Conv" if acc.elem == F32 else "im2col + float64 MatMul"
    b.kernels[node.name] = f"{kind} (graded input |x| <= {x.bound}; every partial sum |Σ| <= {bound})"
    return narrow(b, wrap(b, acc, b.p["conv_accumulator_bits"], node.name))


def _syn_sparse(b: FixedBuilder, node: Node, x: Value) -> Value:
    """A sparse group, computed once per distinct (input, matrix, exponent): groups that repeat
    one (the same graded source read by identical branch LIFs) reuse its value."""
    op: loihi.SynSparse = node.op  # type: ignore[assignment]
    digest = hashlib.sha256()
    for arr in (op.weight_s8, op.indices, op.indptr):
        digest.update(np.ascontiguousarray(arr, np.int64).tobytes())
    key = ("sparse", x.name, digest.digest(), tuple(op.in_shape), tuple(op.out_shape), op.weight_exp_s4)
    hit = b._cache.get(key)
    if hit is not None:
        b.kernels[node.name] = f"sparse: the value of {hit[1]} (same input, matrix and exponent)"
        return hit[0]
    out = _sparse_term(b, node, x)
    b._cache[key] = (out, node.name)
    return out


def _sparse_term(b: FixedBuilder, node: Node, x: Value) -> Value:
    op: loihi.SynSparse = node.op  # type: ignore[assignment]
    e, bits = op.weight_exp_s4, b.p["sparse_accumulator_bits"]
    base = _row_sums(op.weight_s8, op.indptr) * x.bound  # type: ignore[operator]
    if 2 * base < 1 << (bits - 1) and (base << max(e, 0)) < INT32_LIMIT:
        # Lava's 2m, e − 1 arithmetic and its wraps are provably the plain ⌊2^e Σ m x⌋
        out, kind = _float_sparse(b, node.name, x, op.weight_s8, op.indices, op.indptr, op.in_shape, op.out_shape,
                                  e, base, placed=True)  # fmt: skip
        b.kernels[node.name] = f"sparse: {kind} (|Σm·x| <= {base}, no wrap)"
        return out
    out, kind = _float_sparse(b, node.name, x, 2 * op.weight_s8.astype(np.int64), op.indices, op.indptr,
                              op.in_shape, op.out_shape, 0, 2 * base)  # fmt: skip
    acc2 = wrap(b, out, bits, node.name)
    shift = e - 1
    if shift > 0:
        elem = _elem(acc2.bound << shift, node.name)  # type: ignore[operator]
        acc2 = Value(b.op("Mul", [_fl(b, acc2, elem), _const_f(b, 2.0**shift, elem)], f"{node.name}/exp"), elem,
                     acc2.bound << shift)  # type: ignore[operator]  # fmt: skip
    else:
        acc2 = floor_shift(b, acc2, -shift, node.name)
    b.kernels[node.name] = f"sparse: {kind} of 2m, wrapped (|Σ2m·x| <= {2 * base})"
    return narrow(b, wrap(b, acc2, 32, node.name))


def _host(b: FixedBuilder, node: Node, x: Value) -> Value:
    op = node.op
    if isinstance(op, loihi.HostConv) and op.groups == 1:
        return _shared_host_conv(b, node, x)
    return _host_term(b, node, x)


def _shared_host_conv(b: FixedBuilder, node: Node, x: Value) -> Value:
    """A host conv computed once per distinct weight block: host convs of the same input whose
    nonzero output channels form one contiguous block with the same weights, shift and geometry
    (the stem conv that an EMS-Block's two branch LIFs and its concat → max-pool all read) reuse
    one result, placed at their channels with ``Pad`` (an all-zero channel's rounding shift
    ⌊2^(h−1) / 2^h⌋ is 0)."""
    op: loihi.HostConv = node.op  # type: ignore[assignment]
    w = op.weight_s24
    nz = np.flatnonzero(np.abs(w.reshape(w.shape[0], -1).astype(np.int64)).sum(1))
    if not nz.size or nz[-1] - nz[0] + 1 != nz.size or nz.size == w.shape[0]:  # no zero block to drop
        first, block = 0, w
    else:
        first, block = int(nz[0]), w[nz[0] : nz[-1] + 1]
    key = ("host", x.name, np.ascontiguousarray(block).tobytes(), block.shape, op.shift_u5, op.stride, op.padding,
           op.dilation)  # fmt: skip
    hit = b._cache.get(key)
    if hit is None:
        part = node if block is w else Node(node.name, dataclasses.replace(op, weight_s24=block), node.inputs)
        y = _host_term(b, part, x)
        b._cache[key] = hit = (y, node.name)
    else:
        b.kernels[node.name] = f"host: the result of {hit[1]} (same input, weights, shift and geometry)"
    y = hit[0]
    if block is not w:
        y = dataclasses.replace(y, place=(first, block.shape[0], w.shape[0]))
        b.kernels[node.name] += f"; its nonzero output channels {first}..{first + block.shape[0] - 1} only"
    return y


def _host_term(b: FixedBuilder, node: Node, x: Value) -> Value:
    op: Any = node.op  # a HostConv or a HostSparse
    h = op.shift_u5
    if isinstance(op, loihi.HostConv):
        # the rounding shift ⌊(acc + 2^(h−1)) / 2^h⌋ = ⌊acc·2^−h + 1/2⌋, with 2^−h folded into the weights
        bound = conv_sum_bound(op.weight_s24, x.bound)  # type: ignore[arg-type]
        if bound >= FLOAT_EXACT and h:
            split = _split_host(b, node, x, h)
            if split is not None:
                return split
        acc = _float_conv(b, node.name, x, op.weight_s24, op, bound, r=h)
        kind = "float32 Conv" if acc.elem == F32 else "im2col + float64 MatMul"
        b.kernels[node.name] = f"host: {kind} (|x_q| <= {x.bound}; |Σ| <= {bound}; weights · 2^-{h})"
        if not h:
            return narrow(b, acc)
        y = b.op(
            "Floor", [b.op("Add", [acc.name, _const_f(b, 0.5, acc.elem)], f"{node.name}/round")], f"{node.name}/shift"
        )
        return narrow(b, Value(y, acc.elem, -(-(bound + (1 << (h - 1))) // (1 << h))))
    bound = _row_sums(op.weight_s24, op.indptr) * x.bound  # type: ignore[operator]
    acc, kind = _float_sparse(b, node.name, x, op.weight_s24, op.indices, op.indptr, op.in_shape, op.out_shape,
                              0, bound)  # fmt: skip
    b.kernels[node.name] = f"host: {kind} (|x_q| <= {x.bound}; |Σ| <= {bound})"
    return floor_shift(b, acc, h, node.name, 1 << (h - 1)) if h else narrow(b, acc)


def _split_host(b: FixedBuilder, node: Node, x: Value, h: int) -> Value | None:
    """⌊(Σ w·x + 2^(h−1)) / 2^h⌋ with two float32 ``Conv``s, when the weights split exactly.

    w = 2^k·w_hi + w_lo (|w_lo| <= 2^(k−1)), k <= h. t = Σ w_hi·x·2^(k−h) (weights pre-scaled)
    and l = Σ w_lo·x·2^−h + 1/2 (weights pre-scaled, bias 1/2) are exact in float32 when
    Σ|w_hi|·|x| and Σ|w_lo|·|x| + 2^(h−1) are below 2^24 (all partial sums are multiples of a
    power of two with fewer than 24 significant bits). With q = ⌊t⌋ and f = t − q ∈ [0, 1) (exact),
    (acc + 2^(h−1)) / 2^h = q + f + l, so the result is q + ⌊f + l⌋, exact while
    2^h + Σ|w_lo|·|x| + 2^(h−1) < 2^24. None when no k meets the bounds."""
    op: loihi.HostConv = node.op  # type: ignore[assignment]
    w = op.weight_s24.astype(np.int64)
    for k in range(min(h, 23), 0, -1):
        hi = np.round(w / (1 << k)).astype(np.int64)
        lo = w - (hi << k)
        s_hi, s_lo = conv_sum_bound(hi, x.bound), conv_sum_bound(lo, x.bound)  # type: ignore[arg-type]
        if (
            s_hi < FLOAT_EXACT
            and s_lo + (1 << (h - 1)) < FLOAT_EXACT
            and (1 << h) + s_lo + (1 << (h - 1)) < FLOAT_EXACT
        ):
            break
    else:
        return None
    xf = _fl(b, x, F32)
    attrs = _conv_attrs(op)
    t = b.op("Conv", [xf, b.const(hi * 2.0 ** (k - h), F32)], f"{node.name}/hi", **attrs)
    half = b.const(np.full(w.shape[0], 0.5), F32)
    low = b.op("Conv", [xf, b.const(lo * 2.0**-h, F32), half], f"{node.name}/lo", **attrs)
    q = b.op("Floor", [t], f"{node.name}/q")
    frac = b.op("Sub", [t, q], f"{node.name}/frac")
    y = b.op("Add", [q, b.op("Floor", [b.op("Add", [frac, low], f"{node.name}/sum")], f"{node.name}/shift")],
             f"{node.name}/y")  # fmt: skip
    bound = -(-(conv_sum_bound(w, x.bound) + (1 << (h - 1))) // (1 << h))  # type: ignore[arg-type]
    b.kernels[node.name] = (f"host: two float32 Conv (weights split at 2^{k}: |x_q| <= {x.bound}, Σ|w_hi|·|x| <= "
                            f"{s_hi}, Σ|w_lo|·|x| <= {s_lo}, rounding shift {h} recombined exactly)")  # fmt: skip
    return Value(y, F32, bound)


FAST_TERM_LOWERINGS: dict[type, Callable] = {loihi.SynConv: _syn_conv, loihi.SynSparse: _syn_sparse, loihi.HostConv: _host,
                                             loihi.HostSparse: _host}  # fmt: skip


# --- populations ------------------------------------------------------------------------------


def _input_sum(b: FixedBuilder, node: Node, terms: Sequence[Value | PendingConv]) -> Value:
    """The InPort's sum, wrapped to 32 bits only when its bound reaches 2^31."""
    return wrap(b, add(b, emit_terms(b, node, terms), node.name), 32, node.name)


def _lif(b: FixedBuilder, node: Node, terms: Sequence[Value | PendingConv]) -> tuple[Value, str | None]:
    """``lif_step`` of ref-fixed in float32 (float64 where a bound needs it); states float32."""
    op: loihi.LoihiLIF | loihi.LoihiReadout = node.op  # type: ignore[assignment]
    p = b.p
    name = node.name
    unity, half = 1 << p["decay_shift"], 1 << (p["uv_bits"] - 1)
    keep_u = unity - (op.du_u12 + p["ds_offset"])
    keep_v = unity - (op.dv_u12 + p["dm_offset"])
    total = sum(t.bound for t in terms)  # type: ignore[misc]
    if total << p["act_shift"] < INT32_LIMIT and any(isinstance(t, PendingConv) for t in terms):
        # no wrap of a nor of 64·a: scale each term by 64 in the multiply it needs anyway
        act = add(b, emit_terms(b, node, terms, p["act_shift"]), name)
        a = Value(act.name, act.elem, total)
        scaled = True
    else:
        a = _input_sum(b, node, terms)
        scaled = False
    a_bound = _bound(a, name)
    vth = op.vth_u17 << p["vth_shift"]
    bias = op.bias_mant_s13.astype(np.int64) << op.bias_exp_u3
    if is_spike_relay(b, node, a_bound):
        v_in, v_out = b.state(f"{name}.v", op.in_shape(), F32)
        b.op_to("Identity", [v_in], v_out)
        b.kernels[name] = "spike relay: s = a > 0, v stays 0 (a >= 0, vth = 0, no bias)"
        return Value(b.op("Greater", [a.name, _const_f(b, 0.0, a.elem)], f"{name}/fire"), BOOL, 1), v_out
    act_bound = a_bound << p["act_shift"]
    if scaled:
        act = Value(a.name, a.elem, act_bound, act.grain)
    else:
        grain = a.grain + p["act_shift"]
        elem = _elem(act_bound, name, grain)
        act = Value(b.op("Mul", [_fl(b, a, elem), _const_f(b, 1 << p["act_shift"], elem)], f"{name}/act"), elem,
                    act_bound, grain)  # fmt: skip
        act = wrap(b, act, 32, name)
    if keep_u == 0:
        cur = act
    else:
        u_in, u_out = b.state(f"{name}.u", op.in_shape(), F32)  # |u| <= 2^23 after the 24-bit wrap
        cur = wrap(b, add(b, [_trunc_decay(b, u_in, keep_u, p["decay_shift"], half, f"{name}/u"), act], f"{name}/cur"),
                   32, name)  # fmt: skip
    wrapped24 = _bound(cur, name) > half - 1
    if wrapped24:
        cur = _wrap24(b, cur, half, name)
    if keep_u != 0:
        b.op_to("Cast", [_fl(b, cur, cur.elem)], u_out, to=F32)  # in (−2^23, 2^23]: exact in float32
    v_in, v_out = b.state(f"{name}.v", op.in_shape(), F32)  # |v| <= 2^23 − 1 (saturated)
    decayed = _trunc_decay(b, v_in, keep_v, p["decay_shift"], half - 1, f"{name}/v")
    pre, v = saturated_sum(b, decayed, cur, bias, half, name)
    emitted = [x for x, on in (("32-bit wraps", a_bound >= INT32_LIMIT or act_bound >= INT32_LIMIT),
                               ("24-bit wrap", wrapped24), ("saturation", _bound(pre, name) > half - 1)) if on]  # fmt: skip
    b.kernels[name] = (f"{type(op).__name__} {elem_name(pre.elem)} (|a| <= {a_bound}, |v before saturation| <= "
                       f"{pre.bound}): {', '.join(emitted) or 'no wrap or saturation reachable'}")  # fmt: skip
    # v = 0 where fired, as v · [v <= vth] (onnxruntime's Where costs ~5 elementwise ops; v > vth >= 0
    # where fired, so the product is +0)
    keep = b.op("Cast", [b.op("LessOrEqual", [v, _const_f(b, vth, F32)], f"{name}/keep")], f"{name}/keepf", to=F32)
    b.op_to("Mul", [v, keep], v_out)
    if isinstance(op, loihi.LoihiReadout):  # its v is the output; its spikes are never read
        return Value(v_out, F32, half - 1), v_out
    s = b.op("Greater", [v, _const_f(b, vth, F32)], f"{name}/fire")
    return Value(s, BOOL, 1), v_out


def saturated_sum(b: FixedBuilder, decayed: Value, cur: Value, bias: np.ndarray, half: int, name: str
                  ) -> tuple[Value, str]:  # fmt: skip
    """v = clip(decayed + cur + bias, ±(half − 1)) as float32. Returns (the sum before saturation,
    with its bound; v).

    Float32 even where |sum| may pass 2^24, when both operands are float32 (exact) and
    |bias| < half <= 2^23: a partial sum that rounds has |.| > 2^24, and rounding is monotone
    with 2^24 a float32 number, so it stays >= 2^24 in magnitude, and adding the bias leaves
    it beyond half − 1 with the exact sum's sign: the rounded and the exact sum saturate to
    the same ±(half − 1). Otherwise float64 wherever the bound needs it."""
    bias_bound = int(np.abs(bias).max()) if bias.size else 0
    if cur.elem == decayed.elem == F32 and bias_bound < half <= 1 << 23 and decayed.bound + cur.bound >= FLOAT_EXACT:  # type: ignore[operator]
        pre = Value(b.op("Add", [decayed.name, cur.name], f"{name}/pre"), F32, decayed.bound + cur.bound)  # type: ignore[operator]
    else:
        pre = add(b, [decayed, cur], f"{name}/pre")
    if bias_bound:
        pre = Value(b.op("Add", [pre.name, b.bcast(bias.astype(np.float64), pre.elem)], f"{name}/bias"), pre.elem,
                    pre.bound + bias_bound)  # type: ignore[operator]  # fmt: skip
    v = pre.name
    if pre.bound > half - 1:  # type: ignore[operator]
        v = b.op("Clip", [v, _const_f(b, -(half - 1), pre.elem), _const_f(b, half - 1, pre.elem)], f"{name}/sat")
    if pre.elem != F32:
        v = b.op("Cast", [v], f"{name}/v32", to=F32)
    return pre, v


def _wrap24(b: FixedBuilder, cur: Value, half: int, name: str) -> Value:
    """Lava's 24-bit wrap of the current: c − 2h where c > h, then + 2h where that is <= −h.

    The second correction only fires where the first did not, so this is c − 2h·q with
    q = clip(⌈(c − h) / 2h⌉, −1, 1) (no clip needed for |c| < 3h, where it is the modular wrap
    into (−h, h]): cheap float ops instead of two ``Where``. Written as c + 2h·⌊(h − c) / 2h⌋
    (−⌈y⌉ = ⌊−y⌋): onnxruntime's ``Floor`` is vectorised, its ``Ceil`` is not."""
    # float32 whenever c is (|c| < 2^(24 + grain), c a multiple of 2^grain, grain <= 23 so h and
    # 2h are too): h − c may then round, but only beyond 2^(24 + grain), where rounding is
    # monotone and the floor's steps that matter (±2^24, q being clipped to ±1 beyond) are
    # float32 numbers reached exactly from below, so the floor is exact; c + 2h·q' is exact (its
    # value, in (−h, h] or within the bound, is a representable multiple of 2^grain)
    grain = min(cur.grain, 23)
    elem = _elem(cur.bound, name, grain)  # type: ignore[arg-type]
    c = _fl(b, cur, elem)
    q = b.op("Floor", [b.op("Mul", [b.op("Sub", [_const_f(b, half, elem), c], f"{name}/w"),
                                    _const_f(b, 1 / (2 * half), elem)], f"{name}/w")], f"{name}/w")  # fmt: skip
    if cur.bound >= 3 * half:  # type: ignore[operator]
        q = b.op("Clip", [q, _const_f(b, -1.0, elem), _const_f(b, 1.0, elem)], f"{name}/w")
    w = b.op("Add", [c, b.op("Mul", [q, _const_f(b, 2 * half, elem)], f"{name}/w")], f"{name}/w24")
    return Value(w, elem, half if cur.bound < 3 * half else cur.bound - 2 * half, grain)  # type: ignore[operator]


def is_spike_relay(b: FixedBuilder, node: Node, a_bound: int) -> bool:
    """A LIF that relays spikes (no current memory, threshold 0, no bias, inputs spikes with
    weights >= 0, |64·a| < 2^23): from v = 0, v' = 64·a >= 0 either fires (reset to 0) or is 0,
    so v is always 0 (decay, wraps and saturation never act) and s = a > 0."""
    op, p = node.op, b.p
    unity, half = 1 << p["decay_shift"], 1 << (p["uv_bits"] - 1)
    return (isinstance(op, loihi.LoihiLIF) and op.du_u12 + p["ds_offset"] == unity and op.vth_u17 << p["vth_shift"] == 0
            and not np.any(op.bias_mant_s13) and a_bound << p["act_shift"] <= half - 1
            and _nonnegative_spike_terms(b, node))  # fmt: skip


def _nonnegative_spike_terms(b: FixedBuilder, node: Node) -> bool:
    """Every input of ``node`` is a chip synapse group of spikes with weights >= 0."""
    for i in node.inputs:
        t = b.graph[i]
        if not isinstance(t.op, loihi.SynConv | loihi.SynSparse) or b.graph.kind(t.inputs[0]) != Kind.SPIKE:
            return False
        if np.any(t.op.weight_s8 < 0):
            return False
    return True


def _relay(b: FixedBuilder, node: Node, terms: Sequence[Value | PendingConv]) -> tuple[Value, str | None]:
    op: loihi.GradedRelay = node.op  # type: ignore[assignment]
    a = _input_sum(b, node, terms)
    if not np.any(op.bias_s24):
        return a, None
    bound = a.bound + int(np.abs(op.bias_s24).max())  # type: ignore[operator]
    elem = _elem(bound, node.name)
    y = b.op("Add", [_fl(b, a, elem), b.bcast(op.bias_s24.astype(np.float64), elem)], f"{node.name}/bias")
    return Value(y, elem, bound), None


def _maxpool(b: FixedBuilder, node: Node, terms: Sequence[Value | PendingConv]) -> tuple[Value, str | None]:
    op: loihi.FixedMaxPool = node.op  # type: ignore[assignment]
    k, s, p = op.kernel, op.stride or op.kernel, op.padding
    c, h, w = op.in_shape()
    r = op.out_shift_u5
    values = emit_terms(b, node, terms)  # once, for either order (emitted values pass through again)
    pooled = _pool_first(b, node, values)
    if pooled is not None:
        return (floor_shift(b, pooled, r, node.name, 1 << (r - 1)) if r else pooled), None
    pre, _ = _relay(b, node, values)
    x = pre.name
    if pre.elem == F32:  # max is exact; MaxPool drops the incomplete border blocks as the crop does
        pool = b.op("MaxPool", [x], f"{node.name}/max", kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        out = Value(pool, F32, pre.bound)
        return (floor_shift(b, out, r, node.name, 1 << (r - 1)) if r else out), None
    if s != k or p:
        out = Value(padded_maxpool(b, b.cast(pre, I64).name, node.name, op), I64, pre.bound)
        return (floor_shift(b, out, r, node.name, 1 << (r - 1)) if r else out), None
    if h % k or w % k:
        x = b.op("Slice", [x, b.const([0, 0], I64), b.const([(h // k) * k, (w // k) * k], I64),
                           b.const([2, 3], I64)], f"{node.name}/crop")  # fmt: skip
    blocks = b.op("Reshape", [x, b.const([0, c, h // k, k, w // k, k], I64)], f"{node.name}/blocks")
    out = Value(b.op("ReduceMax", [blocks], f"{node.name}/max", axes=[3, 5], keepdims=0), pre.elem, pre.bound)
    return (floor_shift(b, out, r, node.name, 1 << (r - 1)) if r else out), None


def _pool_first(b: FixedBuilder, node: Node, values: Sequence[Value]) -> Value | None:
    """max(Σ terms + bias) as max(Σ terms) + bias, the max taken per channel block before the
    blocks are joined: a quarter of the values to join and add for a 2×2 pool. Exact when the
    bias is constant over each channel (max(x + β) = max(x) + β; ``MaxPool``'s padding is −∞
    either way), no 32-bit wrap can fire (a wrap is not monotone) and every value is a float32
    integer. None otherwise (the caller sums, adds the bias, then pools)."""
    op: loihi.FixedMaxPool = node.op  # type: ignore[assignment]
    bias = op.bias_s24.astype(np.int64).reshape(op.bias_s24.shape[0], -1)
    if bias.size and np.any(bias != bias[:, :1]):
        return None
    bound = sum(v.bound for v in values)  # type: ignore[misc]
    bias_bound = int(np.abs(bias).max()) if bias.size else 0
    grain = min(v.grain for v in values)
    if bound >= INT32_LIMIT or _elem(bound + bias_bound, node.name, grain) != F32:
        return None
    k, s, p = op.kernel, op.stride or op.kernel, op.padding
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p, p, p, p]}
    blocks = channel_blocks(values) or [list(values)]
    parts = [b.op("MaxPool", [_fl(b, add(b, part, node.name), F32)], f"{node.name}/max", **attrs) for part in blocks]
    y = parts[0] if len(parts) == 1 else b.op("Concat", parts, f"{node.name}/concat", axis=1)
    if bias_bound:
        y = b.op("Add", [y, b.const(bias[:, :1, None].astype(np.float64), F32)], f"{node.name}/bias")
    b.kernels[node.name] = (f"FixedMaxPool float32: each of {len(blocks)} channel block(s) pooled before the join, "
                            f"then the per-channel bias (|Σ| <= {bound})")  # fmt: skip
    return Value(y, F32, bound + bias_bound, grain if not bias_bound else 0)


def _term_key(b: FixedBuilder, t: Value | PendingConv) -> tuple:
    if isinstance(t, Value):
        return ("value", t.name, t.place)
    op = t.node.op
    return ("conv", t.x.name, hashlib.sha256(np.ascontiguousarray(op.weight_s8).tobytes()).digest(),  # type: ignore[attr-defined]
            op.weight_s8.shape, str(_conv_attrs(op)), op.weight_exp_s4, op.delay_u6)  # type: ignore[attr-defined]  # fmt: skip


def _shared_lif(b: FixedBuilder, node: Node, terms: Sequence[Value | PendingConv]) -> tuple[Value, str | None]:
    """A LIF whose parameters and inputs (the same values, or convs of the same spikes with the
    same weights) equal an earlier one's computes nothing: from equal states (zeros at the first
    call, then what both emitted) it emits the same spikes and states, so its states are copies
    of the earlier one's (the two branch LIFs of an EMS-Block2 reading the stem's one conv)."""
    op = node.op
    key = ("lif", type(op).__name__, op.du_u12, op.dv_u12, op.vth_u17, op.latency,  # type: ignore[attr-defined]
           hashlib.sha256(np.ascontiguousarray(op.bias_mant_s13, np.int64).tobytes()).digest(), op.bias_exp_u3,  # type: ignore[attr-defined]
           tuple(op.in_shape()), tuple(sorted(_term_key(b, t) for t in terms)))  # type: ignore[attr-defined]  # fmt: skip
    hit = b._cache.get(key)
    if hit is None:
        before = len(b.states_out)
        out, v_out = _lif(b, node, terms)
        states = [nm.removeprefix(f"state_out.{node.name}.") for nm, _, _ in b.states_out[before:]]
        b._cache[key] = (out, v_out, node.name, states)
        return out, v_out
    out, first_v, first, states = hit
    v_out = None
    for suffix in states:
        nm = next((sh, el) for n, sh, el in b.states_out if n == f"state_out.{first}.{suffix}")
        _, mine = b.state(f"{node.name}.{suffix}", nm[0], nm[1])
        b.op_to("Identity", [f"state_out.{first}.{suffix}"], mine)
        if f"state_out.{first}.{suffix}" == first_v:
            v_out = mine
    b.kernels[node.name] = f"the same population as {first} (same parameters and inputs): its spikes, states copied"
    return out, v_out


def _integer_lif(b: FixedBuilder, node: Node, terms: Sequence[Value | PendingConv]) -> tuple[Value, str | None]:
    """SpikeYOLO's I-LIF (``integer_lif_step``) in floats: every value an integer below its bound.

    (a + b)·2^f and the carried V' − s'·2^(k+f) are exact sums and power-of-two scalings; the
    arithmetic shift by d is ``Floor`` of the carried value times 2^−d (exact); V saturates to
    ±(2^23 − 1), so the states V and s are float32; the output, round half to even of
    clamp(V, 0, D·2^(k+f)) / 2^(k+f), is ONNX's ``Round`` (ties to even) of an exact quotient."""
    op: loihi.LoihiIntegerLIF = node.op  # type: ignore[assignment]
    name, qb, half = node.name, op.unit_bits, (1 << (b.p["uv_bits"] - 1)) - 1
    a = _input_sum(b, node, terms)
    bias = op.bias_s24.astype(np.int64)
    bias_bound = int(np.abs(bias).max()) if bias.size else 0
    elem = _elem(_bound(a, name) + bias_bound, name)  # (a + b) exact; times 2^f stays exact
    cur = _fl(b, a, elem)
    if bias_bound:
        cur = b.op("Add", [cur, b.bcast(bias.astype(np.float64), elem)], f"{name}/bias")
    if op.frac_bits_u5:
        cur = b.op("Mul", [cur, _const_f(b, 2.0**op.frac_bits_u5, elem)], f"{name}/frac")
    cur_bound = (_bound(a, name) + bias_bound) << op.frac_bits_u5
    v_in, v_out = b.state(f"{name}.v", op.in_shape(), F32)  # |V| <= 2^23 − 1 (saturated)
    s_in, s_out = b.state(f"{name}.s", op.in_shape(), F32)  # 0..D
    carried_bound = half + (op.levels << qb)
    c_elem = _elem(carried_bound, name)
    carried = b.op("Sub", [_fl(b, Value(v_in, F32, half), c_elem),
                           b.op("Mul", [_fl(b, Value(s_in, F32, op.levels), c_elem), _const_f(b, 2.0**qb, c_elem)],
                                f"{name}/unit")], f"{name}/soft")  # fmt: skip
    dec = Value(carried, c_elem, carried_bound)
    if op.decay_shift_u4:
        dec = floor_shift(b, dec, op.decay_shift_u4, name)
    pre = add(b, [dec, Value(cur, elem, cur_bound)], f"{name}/v")
    v = pre.name
    if _bound(pre, name) > half:
        v = b.op("Clip", [v, _const_f(b, -half, pre.elem), _const_f(b, half, pre.elem)], f"{name}/sat")
    b.op_to("Identity" if pre.elem == F32 else "Cast", [v], v_out, **({} if pre.elem == F32 else {"to": F32}))
    c = b.op("Clip", [v_out, _const_f(b, 0.0, F32), _const_f(b, op.levels << qb, F32)], f"{name}/clamp")
    s = b.op("Round", [b.op("Mul", [c, _const_f(b, 2.0**-qb, F32)], f"{name}/q")], f"{name}/rhe") if qb else c
    b.op_to("Identity", [s], s_out)
    b.kernels[name] = (f"LoihiIntegerLIF float32 (|a + b| <= {_bound(a, name) + bias_bound}, |V before saturation| "
                       f"<= {pre.bound}){': saturation' if _bound(pre, name) > half else ''}")  # fmt: skip
    return Value(s_out, F32, op.levels), v_out


FAST_LOWERINGS: dict[type, Callable] = {
    loihi.LoihiLIF: _shared_lif,
    loihi.LoihiReadout: _lif,
    loihi.GradedRelay: _relay,
    loihi.FixedMaxPool: _maxpool,
    loihi.LoihiIntegerLIF: _integer_lif,
}
