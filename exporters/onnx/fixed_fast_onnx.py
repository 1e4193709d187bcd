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

from collections.abc import Callable, Sequence

import numpy as np

from emsdeploy.ir import Kind, Node
from emsdeploy.ir.ops.loihi import (
    FixedMaxPool,
    GradedRelay,
    HostConv,
    HostSparse,
    LoihiLIF,
    LoihiReadout,
    SynConv,
    SynSparse,
)

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
    spike_conv_bound,
)

__all__ = ["FAST_LOWERINGS", "FAST_TERM_LOWERINGS", "UnboundedError", "fast_input"]

F64_EXACT = 1 << 53  # float64 holds every integer below this exactly
INT32_LIMIT = 1 << 31


class UnboundedError(Exception):
    """A value of this graph has no bound below 2**53: the fast graph cannot be proven exact."""


def _elem(bound: int, where: str) -> int:
    if bound < FLOAT_EXACT:
        return F32
    if bound < F64_EXACT:
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


def wrap(b: FixedBuilder, v: Value, bits: int, hint: str) -> Value:
    """Two's-complement wrap to ``bits``; a no-op (not emitted) when |v| < 2^(bits−1)."""
    half = 1 << (bits - 1)
    if v.bound < half:
        return v
    elem = _elem(v.bound + half, hint)
    x = _fl(b, v, elem)
    k = b.op("Floor", [b.op("Mul", [b.op("Add", [x, _const_f(b, half, elem)], f"{hint}/wrap"),
                                    _const_f(b, 2.0**-bits, elem)], f"{hint}/wrap")], f"{hint}/wrap")  # fmt: skip
    y = b.op("Sub", [x, b.op("Mul", [k, _const_f(b, 2.0**bits, elem)], f"{hint}/wrap")], f"{hint}/wrap")
    return Value(y, elem, half)


def floor_shift(b: FixedBuilder, v: Value, r: int, hint: str, offset: int = 0) -> Value:
    """⌊(v + offset) / 2^r⌋ (exact: a power-of-two scaling and a floor of a float integer)."""
    if r == 0 and offset == 0:
        return v
    elem = _elem(v.bound + abs(offset), hint)
    x = _fl(b, v, elem)
    if offset:
        x = b.op("Add", [x, _const_f(b, offset, elem)], f"{hint}/round")
    y = b.op("Floor", [b.op("Mul", [x, _const_f(b, 2.0**-r, elem)], f"{hint}/shift")], f"{hint}/shift")
    bound = -(-(v.bound + abs(offset)) // (1 << r))
    return narrow(b, Value(y, elem, bound))


def narrow(b: FixedBuilder, v: Value) -> Value:
    """float64 → float32 when the bound allows (halves the memory traffic of what follows)."""
    if v.elem == F64 and v.bound < FLOAT_EXACT:
        return b.cast(v, F32)
    return v


def add(b: FixedBuilder, values: Sequence[Value], hint: str) -> Value:
    bound = sum(v.bound for v in values)  # type: ignore[misc]
    elem = _elem(bound, hint)
    total = _fl(b, values[0], elem)
    for v in values[1:]:
        total = b.op("Add", [total, _fl(b, v, elem)], f"{hint}/sum")
    return Value(total, elem, bound)


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


def _float_conv(b: FixedBuilder, hint: str, x: Value, weight: np.ndarray, op, bound: int) -> Value:
    """Σ w·x as one float convolution: float32 ``Conv`` below 2^24, float64 im2col + ``MatMul`` below 2^53."""
    elem = _elem(bound, hint)
    if elem == F32:
        acc = b.op("Conv", [_fl(b, x, F32), b.const(weight.astype(np.float32), F32)], f"{hint}/conv", **_conv_attrs(op))
        return Value(acc, F32, bound)
    from .fixed_kernels_onnx import _im2col_matmul

    acc = _im2col_matmul(b, hint, _fl(b, x, F64), weight, b.graph.shape(b.graph[hint].inputs[0]), op, elem=F64)
    return Value(acc, F64, bound)


def _row_sums(data: np.ndarray, indptr: np.ndarray) -> int:
    sums = np.zeros(len(indptr) - 1, np.int64)
    np.add.at(sums, np.repeat(np.arange(sums.size), np.diff(indptr)), np.abs(data.astype(np.int64)))
    return int(sums.max()) if sums.size else 0


def _float_sparse(b: FixedBuilder, hint: str, x: Value, data, indices, indptr, in_shape, out_shape, e: int,
                  bound: int) -> tuple[Value, str]:  # fmt: skip
    """⌊2^e · Σ_j W_ij x_j⌋ in floats, every partial sum below ``bound``·... (see the callers)."""
    from .fixed_kernels_onnx import _sparse_matmul

    elem = _elem(bound, hint)
    n = int(np.prod(out_shape))
    diag = (tuple(in_shape) == tuple(out_shape) and indices.size == n and np.array_equal(indptr, np.arange(n + 1))
            and np.array_equal(indices, np.arange(n)))  # fmt: skip
    if diag:  # elementwise x · (w · 2^e), exact (a power-of-two rescaling of the exact product)
        c = data.astype(np.float64) * 2.0**e
        integral = bool(np.all(c == np.round(c)))
        out_bound = -(-bound * (1 << max(e, 0)) // (1 << max(-e, 0)))
        if np.all(c == 1.0):
            return Value(x.name, x.elem, x.bound) if x.elem in (F32, F64) else b.cast(x, F32), "identity"
        y = b.op("Mul", [_fl(b, x, elem), b.const(c.reshape(out_shape), elem)], f"{hint}/diag")
        if not integral:
            y = b.op("Floor", [y], f"{hint}/floor")
        return narrow(b, Value(y, elem, out_bound)), f"elementwise {elem_name(elem)}"
    acc = _sparse_matmul(b, hint, _fl(b, x, elem), data, indices, indptr, in_shape, out_shape, elem=elem)
    v = Value(acc, elem, bound)
    if e > 0:
        return Value(b.op("Mul", [acc, _const_f(b, 2.0**e, elem)], f"{hint}/exp"), elem, bound << e), "row gather"
    return floor_shift(b, v, -e, hint), f"row gather + sum {elem_name(elem)}"


def elem_name(elem: int) -> str:
    return {F32: "float32", F64: "float64", I32: "int32", I64: "int64", U8: "uint8", BOOL: "bool"}[elem]


def _syn_conv(b: FixedBuilder, node: Node, x: Value) -> Value:
    op: SynConv = node.op  # type: ignore[assignment]
    e = op.weight_exp_s4
    bits = b.p["sparse_accumulator_bits"] if op.delay_u6 else b.p["conv_accumulator_bits"]
    if b.graph.kind(node.inputs[0]) == Kind.SPIKE:
        base = spike_conv_bound(op)
        kernel = b.kernel_override or DEFAULT_SPIKE_KERNEL
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
    op: SynSparse = node.op  # type: ignore[assignment]
    e, bits = op.weight_exp_s4, b.p["sparse_accumulator_bits"]
    base = _row_sums(op.weight_s8, op.indptr) * x.bound  # type: ignore[operator]
    if 2 * base < 1 << (bits - 1) and (base << max(e, 0)) < INT32_LIMIT:
        # Lava's 2m, e − 1 arithmetic and its wraps are provably the plain ⌊2^e Σ m x⌋
        out, kind = _float_sparse(b, node.name, x, op.weight_s8, op.indices, op.indptr, op.in_shape, op.out_shape,
                                  e, base)  # fmt: skip
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
    if isinstance(op, HostConv):
        bound = conv_sum_bound(op.weight_s24, x.bound)  # type: ignore[arg-type]
        acc = _float_conv(b, node.name, x, op.weight_s24, op, bound)
        kind = "float32 Conv" if acc.elem == F32 else "im2col + float64 MatMul"
    else:
        bound = _row_sums(op.weight_s24, op.indptr) * x.bound  # type: ignore[operator]
        acc, kind = _float_sparse(b, node.name, x, op.weight_s24, op.indices, op.indptr, op.in_shape, op.out_shape,
                                  0, bound)  # fmt: skip
    b.kernels[node.name] = f"host: {kind} (|x_q| <= {x.bound}; |Σ| <= {bound})"
    h = op.shift_u5
    return floor_shift(b, acc, h, node.name, 1 << (h - 1)) if h else narrow(b, acc)


FAST_TERM_LOWERINGS: dict[type, Callable] = {SynConv: _syn_conv, SynSparse: _syn_sparse, HostConv: _host,
                                             HostSparse: _host}  # fmt: skip


# --- populations ------------------------------------------------------------------------------


def _input_sum(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> Value:
    """The InPort's sum, wrapped to 32 bits only when its bound reaches 2^31."""
    return wrap(b, add(b, terms, node.name), 32, node.name)


def _lif(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> tuple[Value, str | None]:
    """``lif_step`` of ref-fixed in float32 (float64 where a bound needs it); states float32."""
    op: LoihiLIF | LoihiReadout = node.op  # type: ignore[assignment]
    p = b.p
    name = node.name
    unity, half = 1 << p["decay_shift"], 1 << (p["uv_bits"] - 1)
    keep_u = unity - (op.du_u12 + p["ds_offset"])
    keep_v = unity - (op.dv_u12 + p["dm_offset"])
    a = _input_sum(b, node, terms)
    act_bound = a.bound << p["act_shift"]  # type: ignore[operator]
    elem = _elem(act_bound, name)
    act = Value(b.op("Mul", [_fl(b, a, elem), _const_f(b, 1 << p["act_shift"], elem)], f"{name}/act"), elem, act_bound)
    act = wrap(b, act, 32, name)
    if keep_u == 0:
        cur = act
    else:
        u_in, u_out = b.state(f"{name}.u", op.in_shape(), F32)  # |u| <= 2^23 after the 24-bit wrap
        cur = wrap(b, add(b, [_trunc_decay(b, u_in, keep_u, p["decay_shift"], half, f"{name}/u"), act], f"{name}/cur"),
                   32, name)  # fmt: skip
    if cur.bound > half - 1:  # Lava's 24-bit wrap: two corrections, the second reading the first result
        elem = _elem(cur.bound + 2 * half, name)
        c = _fl(b, cur, elem)
        hi = b.op("Greater", [c, _const_f(b, half, elem)], f"{name}/hi")
        w1 = b.op("Where", [hi, b.op("Sub", [c, _const_f(b, 2 * half, elem)], f"{name}/dn"), c], f"{name}/w1")
        lo = b.op("LessOrEqual", [w1, _const_f(b, -half, elem)], f"{name}/lo")
        w2 = b.op("Where", [lo, b.op("Add", [c, _const_f(b, 2 * half, elem)], f"{name}/up"), w1], f"{name}/w2")
        cur = Value(w2, elem, max(half, cur.bound - 2 * half))  # type: ignore[operator]
    if keep_u != 0:
        b.op_to("Cast", [_fl(b, cur, cur.elem)], u_out, to=F32)  # in (−2^23, 2^23]: exact in float32
    v_in, v_out = b.state(f"{name}.v", op.in_shape(), F32)  # |v| <= 2^23 − 1 (saturated)
    bias = op.bias_mant_s13.astype(np.int64) << op.bias_exp_u3
    bias_bound = int(np.abs(bias).max()) if bias.size else 0
    vth = op.vth_u17 << p["vth_shift"]
    decayed = _trunc_decay(b, v_in, keep_v, p["decay_shift"], half - 1, f"{name}/v")
    pre = add(b, [decayed, cur], f"{name}/pre")
    if bias_bound:
        pre = Value(b.op("Add", [pre.name, b.const(bias.astype(np.float64), pre.elem)], f"{name}/bias"), pre.elem,
                    pre.bound + bias_bound)  # type: ignore[operator]  # fmt: skip
    v = pre.name
    if pre.bound > half - 1:  # type: ignore[operator]
        v = b.op("Clip", [v, _const_f(b, -(half - 1), pre.elem), _const_f(b, half - 1, pre.elem)], f"{name}/sat")
    if pre.elem != F32:
        v = b.op("Cast", [v], f"{name}/v32", to=F32)
    s = b.op("Greater", [v, _const_f(b, vth, F32)], f"{name}/fire")
    b.op_to("Where", [s, _const_f(b, 0.0, F32), v], v_out)
    if isinstance(op, LoihiReadout):
        return Value(v_out, F32, half - 1), v_out
    return Value(s, BOOL, 1), v_out


def _relay(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> tuple[Value, str | None]:
    op: GradedRelay = node.op  # type: ignore[assignment]
    a = _input_sum(b, node, terms)
    if not np.any(op.bias_s24):
        return a, None
    bound = a.bound + int(np.abs(op.bias_s24).max())  # type: ignore[operator]
    elem = _elem(bound, node.name)
    y = b.op("Add", [_fl(b, a, elem), b.const(op.bias_s24.astype(np.float64), elem)], f"{node.name}/bias")
    return Value(y, elem, bound), None


def _maxpool(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> tuple[Value, str | None]:
    op: FixedMaxPool = node.op  # type: ignore[assignment]
    pre, _ = _relay(b, node, terms)
    k = op.kernel
    c, h, w = op.in_shape()
    x = pre.name
    if h % k or w % k:
        x = b.op("Slice", [x, b.const([0, 0], I64), b.const([(h // k) * k, (w // k) * k], I64),
                           b.const([2, 3], I64)], f"{node.name}/crop")  # fmt: skip
    blocks = b.op("Reshape", [x, b.const([0, c, h // k, k, w // k, k], I64)], f"{node.name}/blocks")
    out = Value(b.op("ReduceMax", [blocks], f"{node.name}/max", axes=[3, 5], keepdims=0), pre.elem, pre.bound)
    r = op.out_shift_u5
    return (floor_shift(b, out, r, node.name, 1 << (r - 1)) if r else out), None


FAST_LOWERINGS: dict[type, Callable] = {
    LoihiLIF: _lif,
    LoihiReadout: _lif,
    GradedRelay: _relay,
    FixedMaxPool: _maxpool,
}
