"""ONNX lowerings of the Loihi fixed-point ops: the integer semantics of ``simulators/fixed_kernels.py``.

One function per IR op in :data:`FIXED_LOWERINGS` (populations) and :data:`TERM_LOWERINGS`
(synapse groups and host terms). Every lowering reproduces ref-fixed bit for bit; where ref-fixed
skips a wrap because a bound proves it a no-op, the lowering proves the same bound (or emits the
wrap). Integer division in onnxruntime truncates toward zero (C++ ``/``), which is Lava's
``trunc0``; a floor shift is written as ``(x − Mod(x, 2^r)) / 2^r`` (``Mod`` with ``fmod = 0``
takes the divisor's sign, so the difference is an exact multiple).

Kernels for a chip conv of 0/1 spikes (:data:`SPIKE_CONV_KERNELS`): ``ConvInteger`` (uint8 spikes
× mantissas stored as uint8 with zero point 128, int32 out) or a float32 ``Conv`` of the spikes
with the mantissas, exact because every partial sum is an integer of magnitude at most
Σ|m| over one output's fan-in (:func:`spike_conv_bound`), below 2**24, or an im2col (one
``Gather``) and ``MatMulInteger`` uint8 × int8 (:func:`gathered_matmul_integer`). Graded convs and host
convs take an im2col and an int64 ``MatMul`` (exact for any integers).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from numpy.typing import ArrayLike
from onnx import TensorProto, helper, numpy_helper

from emsdeploy.ir import Graph, Kind, Node
from emsdeploy.ir.ops import loihi

__all__ = [
    "FIXED_LOWERINGS",
    "SPIKE_CONV_KERNELS",
    "gathered_matmul_integer",
    "TERM_LOWERINGS",
    "FixedBuilder",
    "Value",
    "spike_conv_bound",
]

I32, I64, U8, F32, F64, BOOL = (TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8, TensorProto.FLOAT,
                                TensorProto.DOUBLE, TensorProto.BOOL)  # fmt: skip
I8 = TensorProto.INT8
I16 = TensorProto.INT16
NP: dict[int, type] = {I32: np.int32, I64: np.int64, U8: np.uint8, I8: np.int8, I16: np.int16, F32: np.float32,
                       F64: np.float64}  # fmt: skip
INT32_LIMIT = 1 << 31
FLOAT_EXACT = 1 << 24  # float32 holds every integer below this exactly


@dataclass(frozen=True)
class Value:
    """An ONNX value of this step: its name, element type, a proven bound on |value| (None: unknown)
    and a power of two it is a multiple of (for the fast lowering's float exactness argument)."""

    name: str
    elem: int
    bound: int | None = None
    grain: int = 0  # a multiple of 2**grain: float32 holds it exactly below 2**(24 + grain)
    place: tuple[int, int, int] | None = None  # (first, count, total): channels [first, first + count) of
    # a value with ``total`` channels, zero elsewhere (the fast lowering's terms; ``add`` places them)


class FixedBuilder:
    """Collects nodes and initializers; knows the graph, the profile and this step's clock."""

    def __init__(
        self, graph: Graph, kernel_override: str | None = None, prefix: str = "", shared: FixedBuilder | None = None
    ) -> None:
        self.graph = graph
        self.p = dict(graph.attrs["loihi"])
        self.nodes: list[onnx.NodeProto] = []
        # builders of the two branches of one graph share its initializers (and their names)
        self.inits: list[onnx.TensorProto] = shared.inits if shared else []
        self.kernel_override = kernel_override
        self.kernels: dict[str, str] = {}  # synapse group -> kernel and its exactness argument
        self._consts: dict[tuple, str] = shared._consts if shared else {}
        self.prefix = prefix
        self._cache: dict[tuple, Any] = {}  # memoised values of this builder (casts, shared terms)
        self._n = 0
        self.batch = ""  # set by the exporter: a [1] int64 value holding B
        self.clock = ""  # the [1] int64 step counter input
        self.states_in: list[tuple[str, tuple[int, ...], int]] = []
        self.states_out: list[tuple[str, tuple[int, ...], int]] = []
        self.lags: list[str] = ["x"]  # the input, then the state inputs of the input 1, 2, ... steps back
        self.history: dict[str, list[str]] = {}  # population -> state inputs of its output at n-1, n-2, ...

    # --- primitives -------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}#{self._n}"

    def op(self, op_type: str, inputs: Sequence[str], hint: str, **attrs) -> str:
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def op_to(self, op_type: str, inputs: Sequence[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=f"{output}/{op_type}", **attrs))
        return output

    def const(self, array: ArrayLike, elem: int) -> str:
        arr: np.ndarray = np.ascontiguousarray(np.asarray(array, dtype=NP[elem]))
        data = arr.tobytes()
        key = (elem, arr.shape, data if arr.size <= 64 else hashlib.sha256(data).digest())
        if key not in self._consts:  # each array once, whichever branch asks
            self._consts[key] = name = f"c{len(self.inits)}"
            self.inits.append(numpy_helper.from_array(arr, name))
        return self._consts[key]

    def bcast(self, array: ArrayLike, elem: int) -> str:
        """A constant only ever broadcast against a whole [B, *shape] value (a bias, a channel
        scale), stored with size 1 along each axis it is constant over: a per-channel bias as
        (C, 1, 1) rather than (C, H, W) (SpikeYOLO-n's fixed graph at 640×640 held 0.9 GB of them)."""
        arr = np.asarray(array)
        for axis in range(arr.ndim):
            first = np.take(arr, [0], axis=axis)
            if arr.shape[axis] > 1 and np.array_equal(arr, np.broadcast_to(first, arr.shape)):
                arr = first
        return self.const(arr, elem)

    def const_int64(self, array: ArrayLike) -> str:
        """An int64 constant stored in the narrowest integer type holding its values, cast back
        by a node onnxruntime folds at load (the integer graph's weight matrices: int8 mantissas
        times 2^e stored as int64 were most of a SpikeYOLO fixed graph's file)."""
        arr = np.asarray(array, dtype=np.int64)
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        for elem, np_type in ((I8, np.int8), (I16, np.int16), (I32, np.int32)):
            info = np.iinfo(np_type)
            if info.min <= lo and hi <= info.max:
                name = self.const(arr.astype(np_type), elem)
                key = ("int64", name)
                if key not in self._cache:
                    self._cache[key] = self.op("Cast", [name], "wide", to=I64)
                return self._cache[key]
        return self.const(arr, I64)

    def cast(self, v: Value, elem: int) -> Value:
        if v.elem == elem:
            return v
        key = ("cast", v.name, elem)
        if key not in self._cache:
            self._cache[key] = self.op("Cast", [v.name], f"{v.name}/as{elem}", to=elem)
        return dataclasses.replace(v, name=self._cache[key], elem=elem)

    def reset_flag(self, latency: int) -> str | None:
        """bool [1]: this step is ``latency`` (the population's reset step); None in aligned timing,
        where every call is a valid step and the zero state at the first call is the reset."""
        if not self.clock:
            return None
        key = ("reset", latency)
        if key not in self._cache:
            self._cache[key] = self.op("Equal", [self.clock, self.const([latency], I64)], f"reset@{latency}")
        return self._cache[key]

    # --- exact integer helpers ----------------------------------------------------------------
    def wrap(self, x: str, bits: int, elem: int = I64) -> str:
        """Two's-complement wrap to ``bits`` (int64 in and out): Mod(x + half, 2^bits) − half."""
        half = 1 << (bits - 1)
        shifted = self.op("Add", [x, self.const(half, elem)], "wrap")
        m = self.op("Mod", [shifted, self.const(1 << bits, elem)], "wrap", fmod=0)
        return self.op("Sub", [m, self.const(half, elem)], "wrap")

    def floor_shift(self, x: str, r: int, elem: int = I64) -> str:
        """floor(x / 2^r), what ``x >> r`` is on signed integers."""
        if r == 0:
            return x
        d = self.const(1 << r, elem)
        rem = self.op("Mod", [x, d], "fshift", fmod=0)
        return self.op("Div", [self.op("Sub", [x, rem], "fshift"), d], "fshift")

    def trunc_mul_shift(self, x: str, keep: int, shift: int, elem: int) -> str:
        """trunc0(x · keep / 2^shift) (Lava's decay); int32 when keep is a power of two."""
        if keep == 1 << shift:
            return x
        if keep == 0:
            return self.op("Mul", [x, self.const(0, elem)], "zero")
        j = keep.bit_length() - 1
        if keep == 1 << j:  # trunc0(x·2^j / 2^s) = trunc0(x / 2^(s−j)), no widening needed
            return self.op("Div", [x, self.const(1 << (shift - j), elem)], "decay")
        wide = x if elem == I64 else self.op("Cast", [x], "decay", to=I64)
        prod = self.op("Mul", [wide, self.const(keep, I64)], "decay")
        q = self.op("Div", [prod, self.const(1 << shift, I64)], "decay")
        return q if elem == I64 else self.op("Cast", [q], "decay", to=elem)

    def sum_values(self, values: Sequence[Value], elem: int) -> str:
        total = self.cast(values[0], elem).name
        for v in values[1:]:
            total = self.op("Add", [total, self.cast(v, elem).name], "sum")
        return total

    # --- state ---------------------------------------------------------------------------------
    def state(self, name: str, shape: Sequence[int], elem: int) -> tuple[str, str]:
        self.states_in.append((f"state_in.{name}", tuple(shape), elem))
        self.states_out.append((f"state_out.{name}", tuple(shape), elem))
        return f"state_in.{name}", f"state_out.{name}"


# --- synapse groups and host terms -----------------------------------------------------------


def spike_conv_bound(op: loihi.SynConv) -> int:
    """max over outputs of Σ|m| over the fan-in: a bound on |Σ m·x| for 0/1 spikes x."""
    w = np.abs(op.weight_s8.astype(np.int64))
    return int(w.reshape(w.shape[0], -1).sum(1).max()) if w.size else 0


def _conv_attrs(op) -> dict:
    (kh, kw) = op.weight_s8.shape[2:] if isinstance(op, loihi.SynConv) else op.weight_s24.shape[2:]
    (ph, pw) = op.padding
    return dict(kernel_shape=[int(kh), int(kw)], strides=list(op.stride), pads=[ph, pw, ph, pw],
                dilations=list(op.dilation), group=int(op.groups))  # fmt: skip


def _conv_integer(b: FixedBuilder, node: Node, x: Value) -> str:
    op: loihi.SynConv = node.op  # type: ignore[assignment]
    xs = b.cast(x, U8).name
    w = b.const((op.weight_s8.astype(np.int16) + 128).astype(np.uint8), U8)
    return b.op("ConvInteger", [xs, w, "", b.const(np.uint8(128), U8)], f"{node.name}/convint", **_conv_attrs(op))


def _float_conv(b: FixedBuilder, node: Node, x: Value) -> str:
    op: loihi.SynConv = node.op  # type: ignore[assignment]
    xf = b.cast(x, F32).name
    w = b.const(op.weight_s8.astype(np.float32), F32)
    acc = b.op("Conv", [xf, w], f"{node.name}/conv", **_conv_attrs(op))
    return b.op("Cast", [acc], f"{node.name}/int", to=I32)  # exact: |acc| is an integer < 2**24


def gathered_matmul_integer(b: FixedBuilder, x: str, w: np.ndarray, in_shape: tuple[int, ...], op, hint: str) -> str:
    """The int32 sums of a conv of uint8 ``x`` (NCHW) with int8 weights ``w`` (O, C, kh, kw), as
    ``ConvInteger`` gives them, computed as an im2col and one ``MatMulInteger`` u8×s8 with the
    weights as the constant right operand (which onnxruntime packs for its VNNI/AMX kernels).

    The im2col is one ``Gather`` of whole pixel rows (C bytes each) of the zero-padded NHWC
    input, at precomputed row indices (output pixel × kernel tap): far fewer, larger copies than
    per-tap ``Slice``s. Exact: the same products and int32 sums (the caller bounds them).

    The weights are padded with zero columns to a multiple of 16 outputs and the padding sliced
    off: onnxruntime 1.23.2's ``MatMulInteger`` with a constant right operand returns wrong sums
    for other widths (measured on an AVX-512 VNNI / AMX Xeon: N = 17, 21, 27 wrong across M, K
    and batch; every multiple of 16 exact; docs/onnx.md)."""
    o = int(w.shape[0])
    xt = b.op("Transpose", [x], f"{hint}/nhwc", perm=[0, 2, 3, 1])
    acc, ho, wo = nhwc_matmul_integer(b, xt, w, in_shape, op, hint)
    acc = b.op("Transpose", [acc], f"{hint}/nchw", perm=[0, 2, 1])
    if o % 16:
        acc = b.op("Slice", [acc, b.const([0], I64), b.const([o], I64), b.const([1], I64)], f"{hint}/width")
    return b.op("Reshape", [acc, b.const([0, o, ho, wo], I64)], f"{hint}/out")


def nhwc_matmul_integer(b: FixedBuilder, xt: str, w: np.ndarray, in_shape: tuple[int, ...], op, hint: str
                        ) -> tuple[str, int, int]:  # fmt: skip
    """The core of :func:`gathered_matmul_integer` on an NHWC uint8 input ``xt`` ([B, H, W, C]):
    the int32 sums as [B, Ho·Wo, O'] (O' = O rounded up to a multiple of 16, the columns past O
    zero) and (Ho, Wo). A 1×1 conv of stride 1 without padding needs no gather."""
    c, h, wd = (int(v) for v in in_shape)
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    hp, wp = h + 2 * ph, wd + 2 * pw
    ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    if (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):
        cols = b.op("Reshape", [xt, b.const([0, h * wd, c], I64)], f"{hint}/rows")
    else:
        if ph or pw:
            xt = b.op("Pad", [xt, b.const([0, ph, pw, 0, 0, ph, pw, 0], I64)], f"{hint}/pad")
        rows = b.op("Reshape", [xt, b.const([0, hp * wp, c], I64)], f"{hint}/rows")
        oy, ox = np.meshgrid(np.arange(ho) * sh, np.arange(wo) * sw, indexing="ij")
        taps = [(oy + i * dh) * wp + ox + j * dw for i in range(kh) for j in range(kw)]
        index = np.stack(taps, -1).reshape(ho * wo, kh * kw)
        cols = b.op("Gather", [rows, b.const(index, I64)], f"{hint}/im2col", axis=1)
        cols = b.op("Reshape", [cols, b.const([0, ho * wo, kh * kw * c], I64)], f"{hint}/cols")
    wm = np.zeros((kh * kw * c, -(-o // 16) * 16), np.int8)
    wm[:, :o] = w.transpose(2, 3, 1, 0).reshape(kh * kw * c, o)
    return b.op("MatMulInteger", [cols, b.const(wm, I8)], f"{hint}/matmulint"), ho, wo


def _gathered_conv(b: FixedBuilder, node: Node, x: Value) -> str:
    op: loihi.SynConv = node.op  # type: ignore[assignment]
    if op.groups != 1:
        return _conv_integer(b, node, x)  # the im2col spans every input channel
    return gathered_matmul_integer(b, b.cast(x, U8).name, op.weight_s8, b.graph.shape(node.inputs[0]), op,
                                   f"{node.name}/mmi")  # fmt: skip


SPIKE_CONV_KERNELS: dict[str, Callable[[FixedBuilder, Node, Value], str]] = {
    "ConvInteger": _conv_integer,
    "float-Conv": _float_conv,
    "MatMulInteger": _gathered_conv,
}
DEFAULT_SPIKE_KERNEL = "ConvInteger"  # measured fastest in this onnxruntime build (docs/onnx.md)


def _im2col_matmul(
    b: FixedBuilder, hint: str, x64: str, weight: np.ndarray, in_shape, op, elem: int = I64, scale: float = 1.0
) -> str:
    """An exact convolution: im2col (strided slices of the padded input, shared by every conv of
    the same input and geometry) then MatMul, in int64 (or in float64 with the weights times the
    power of two ``scale``, where the caller proves every partial sum exact). A grouped conv
    (SpikeYOLO's depthwise convs) is one batched MatMul over the groups."""
    c_in, h, w = in_shape
    co, ci, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    key = ("im2col", x64, kh, kw, op.stride, op.padding, op.dilation)
    if key not in b._cache:
        xp = b.op("Pad", [x64, b.const([0, 0, ph, pw, 0, 0, ph, pw], I64)], f"{hint}/pad") if ph or pw else x64
        cols = []
        for i in range(kh):
            for j in range(kw):
                starts = [i * dh, j * dw]
                ends = [i * dh + sh * (ho - 1) + 1, j * dw + sw * (wo - 1) + 1]
                cols.append(b.op("Slice", [xp, b.const(starts, I64), b.const(ends, I64), b.const([2, 3], I64),
                                           b.const([sh, sw], I64)], f"{hint}/col"))  # fmt: skip
        cat = b.op("Concat", cols, f"{hint}/im2col", axis=1) if len(cols) > 1 else cols[0]
        b._cache[key] = b.op("Reshape", [cat, b.const([0, c_in * kh * kw, ho * wo], I64)], f"{hint}/flat")
    flat = b._cache[key]
    g = op.groups
    if g != 1:  # rows (tap, channel) -> (group, tap, channel in group); weights (group, out, tap·channel)
        taps = kh * kw
        grouped = b.op("Reshape", [flat, b.const([0, taps, g, ci, ho * wo], I64)], f"{hint}/taps")
        grouped = b.op("Transpose", [grouped], f"{hint}/groups", perm=[0, 2, 1, 3, 4])
        flat = b.op("Reshape", [grouped, b.const([0, g, taps * ci, ho * wo], I64)], f"{hint}/gflat")
        w2 = weight.reshape(g, co // g, ci, kh, kw).transpose(0, 1, 3, 4, 2).reshape(g, co // g, taps * ci)
    else:
        w2 = weight.transpose(0, 2, 3, 1).reshape(co, kh * kw * ci)  # (offset, channel) order
    wc = b.const_int64(w2) if elem == I64 else b.const(w2.astype(np.float64) * scale, elem)
    acc = b.op("MatMul", [wc, flat], f"{hint}/matmul")
    return b.op("Reshape", [acc, b.const([0, co, ho, wo], I64)], f"{hint}/acc")


def _sparse_matmul(b: FixedBuilder, hint: str, x64: str, data: np.ndarray, indices, indptr, in_shape, out_shape,
                   elem: int = I64) -> str:  # fmt: skip
    """Σ_j W_ij x_j exactly in int64 (or in a float type whose exactness the caller proves): gather
    the sources, scale, scatter-add into the rows."""
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
    n = n_out
    diag = (
        in_shape == out_shape
        and indices.size == n
        and np.array_equal(indptr, np.arange(n + 1))
        and np.array_equal(indices, np.arange(n))
    )
    if diag:  # an identity or channel scaling: elementwise
        return b.op("Mul", [x64, b.bcast(data.astype(np.int64).reshape(out_shape), elem)], f"{hint}/diag")
    flat = b.op("Reshape", [x64, b.const([0, n_in], I64)], f"{hint}/flat")
    counts = np.diff(indptr)
    k = int(counts.max()) if counts.size else 0
    if k and n_out * k <= 2 * indices.size + 1024:
        # rows padded to the longest (index 0, weight 0): gather [B, n_out, k], scale, sum over k
        pos = np.arange(k)[None, :] < counts[:, None]
        idx = np.zeros((n_out, k), np.int64)
        wts = np.zeros((n_out, k), np.int64)
        idx[pos], wts[pos] = indices, data
        if k == 1:  # one source per row (a channel placement, an up-sampling): gather and scale
            picked = b.op("Gather", [flat, b.const(idx[:, 0], I64)], f"{hint}/gather", axis=1)
            if np.any(wts != 1):
                picked = b.op("Mul", [picked, b.const(wts[:, 0], elem)], f"{hint}/scale")
            return b.op("Reshape", [picked, b.const([0, *out_shape], I64)], f"{hint}/acc")
        picked = b.op("Gather", [flat, b.const(idx, I64)], f"{hint}/gather", axis=1)
        scaled = b.op("Mul", [picked, b.const(wts, elem)], f"{hint}/scale")
        acc = b.op("ReduceSum", [scaled, b.const([2], I64)], f"{hint}/rowsum", keepdims=0)
        return b.op("Reshape", [acc, b.const([0, *out_shape], I64)], f"{hint}/acc")
    cols = b.op("Transpose", [flat], f"{hint}/cols", perm=[1, 0])
    picked = b.op("Gather", [cols, b.const(indices.astype(np.int64), I64)], f"{hint}/gather", axis=0)
    scaled = b.op("Mul", [picked, b.const(data.astype(np.int64).reshape(-1, 1), elem)], f"{hint}/scale")
    rows = np.repeat(np.arange(n_out, dtype=np.int64), counts).reshape(-1, 1)
    shape = b.op("Concat", [b.const([n_out], I64), b.batch], f"{hint}/zshape", axis=0)
    zeros = b.op("ConstantOfShape", [shape], f"{hint}/zeros", value=numpy_helper.from_array(np.zeros(1, NP[elem])))
    acc = b.op("ScatterND", [zeros, b.const(rows, I64), scaled], f"{hint}/scatter", reduction="add")
    out = b.op("Transpose", [acc], f"{hint}/rows", perm=[1, 0])
    return b.op("Reshape", [out, b.const([0, *out_shape], I64)], f"{hint}/acc")


def _syn_conv(b: FixedBuilder, node: Node, x: Value) -> Value:
    op: loihi.SynConv = node.op  # type: ignore[assignment]
    e = op.weight_exp_s4
    bits = b.p["sparse_accumulator_bits"] if op.delay_u6 else b.p["conv_accumulator_bits"]
    if b.graph.kind(node.inputs[0]) == Kind.SPIKE:
        base = spike_conv_bound(op)
        bound = base << e
        kernel = b.kernel_override or DEFAULT_SPIKE_KERNEL
        if kernel == "float-Conv" and base >= FLOAT_EXACT:
            kernel = "ConvInteger"  # the float sums are not provably exact
        acc = SPIKE_CONV_KERNELS[kernel](b, node, x)  # int32, |acc| <= base
        b.kernels[node.name] = f"{kernel} (|Σm·s| <= {base}{' < 2^24' if kernel == 'float-Conv' else ''})"
        if bound < INT32_LIMIT and bound < 1 << (bits - 1):  # no wrap: int32 all the way
            out = b.op("Mul", [acc, b.const(1 << e, I32)], f"{node.name}/exp") if e else acc
            return Value(out, I32, bound)
        acc64 = b.op("Cast", [acc], f"{node.name}/wide", to=I64)
        shifted = b.op("Mul", [acc64, b.const(1 << e, I64)], f"{node.name}/exp")
        return Value(b.wrap(shifted, bits) if bound >= 1 << (bits - 1) else shifted, I64, None)
    # graded integers: Σ x·(m·2^e) exactly, wrapped to 24 bits (Lava's Conv with message bits)
    acc = _im2col_matmul(b, node.name, b.cast(x, I64).name, op.effective_weight(), b.graph.shape(node.inputs[0]), op)
    b.kernels[node.name] = "im2col + int64 MatMul (graded input)"
    return Value(b.wrap(acc, b.p["conv_accumulator_bits"]), I64, None)


def _syn_sparse(b: FixedBuilder, node: Node, x: Value) -> Value:
    op: loihi.SynSparse = node.op  # type: ignore[assignment]
    acc = _sparse_matmul(b, node.name, b.cast(x, I64).name, op.weight_s8, op.indices, op.indptr, op.in_shape,
                         op.out_shape)  # fmt: skip
    b.kernels[node.name] = "sparse: row gather + sum (int64)"
    e, bits = op.weight_exp_s4, b.p["sparse_accumulator_bits"]
    base = None
    if b.graph.kind(node.inputs[0]) == Kind.SPIKE:
        sums = np.zeros(len(op.indptr) - 1, np.int64)
        np.add.at(sums, np.repeat(np.arange(sums.size), np.diff(op.indptr)), np.abs(op.weight_s8.astype(np.int64)))
        base = int(sums.max()) if sums.size else 0
    if base is not None and 2 * base < 1 << (bits - 1) and (base << max(e, 0)) < INT32_LIMIT:
        out = b.op("Mul", [acc, b.const(1 << e, I64)], f"{node.name}/exp") if e > 0 else b.floor_shift(acc, -e)
        bound = (base << e) if e >= 0 else (base >> -e) + 1
        return Value(out, I64, bound)
    acc2 = b.wrap(b.op("Mul", [acc, b.const(2, I64)], f"{node.name}/x2"), bits)
    shift = e - 1
    out = (
        b.op("Mul", [acc2, b.const(1 << shift, I64)], f"{node.name}/exp") if shift > 0 else b.floor_shift(acc2, -shift)
    )
    return Value(b.wrap(out, 32), I64, None)


def _host(b: FixedBuilder, node: Node, x_int: str) -> Value:
    op: Any = node.op  # a HostConv or a HostSparse
    if isinstance(op, loihi.HostConv):
        acc = _im2col_matmul(b, node.name, x_int, op.weight_s24, b.graph.shape(node.inputs[0]), op)
        b.kernels[node.name] = "host: im2col + int64 MatMul"
    else:
        acc = _sparse_matmul(b, node.name, x_int, op.weight_s24, op.indices, op.indptr, op.in_shape, op.out_shape)
        b.kernels[node.name] = "host sparse: row gather + sum (int64)"
    h = op.shift_u5
    if h:
        acc = b.floor_shift(b.op("Add", [acc, b.const(1 << (h - 1), I64)], f"{node.name}/round"), h)
    return Value(acc, I64, None)


TERM_LOWERINGS: dict[type, Callable] = {
    loihi.SynConv: _syn_conv,
    loihi.SynSparse: _syn_sparse,
    loihi.HostConv: _host,
    loihi.HostSparse: _host,
}


# --- populations ------------------------------------------------------------------------------


def _input_sum(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> Value:
    """The InPort's int32 sum (wrapped to 32 bits unless a bound proves no overflow)."""
    bounds = [t.bound for t in terms]
    total = None if any(x is None for x in bounds) else sum(bounds)  # type: ignore[arg-type]
    if total is not None and total < INT32_LIMIT and all(t.elem == I32 for t in terms):
        return Value(b.sum_values(terms, I32), I32, total)
    a = b.sum_values(terms, I64)
    if total is None or total >= INT32_LIMIT:
        a = b.wrap(a, 32)
    return Value(a, I64, total)


def _lif(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> tuple[Value, str | None]:
    """``lif_step`` of ref-fixed. Returns (spikes as bool, or v for a readout; the v state_out)."""
    op: loihi.LoihiLIF | loihi.LoihiReadout = node.op  # type: ignore[assignment]
    p = b.p
    unity, half = 1 << p["decay_shift"], 1 << (p["uv_bits"] - 1)
    keep_u = unity - (op.du_u12 + p["ds_offset"])
    keep_v = unity - (op.dv_u12 + p["dm_offset"])
    a = _input_sum(b, node, terms)
    safe = a.bound is not None and (a.bound << p["act_shift"]) + 2 * half < INT32_LIMIT
    elem = I32 if safe and a.elem == I32 else I64
    a_name = b.cast(a, elem).name
    reset = b.reset_flag(op.latency)
    zero = b.const(0, elem)
    act = b.op("Mul", [a_name, b.const(1 << p["act_shift"], elem)], f"{node.name}/act")
    if not safe:
        act = b.wrap(act, 32)
    if keep_u == 0:
        cur = act
    else:
        u_in, u_out = b.state(f"{node.name}.u", op.in_shape(), elem)
        u_prev = b.op("Where", [reset, zero, u_in], f"{node.name}/u_reset") if reset else u_in
        cur = b.op("Add", [b.trunc_mul_shift(u_prev, keep_u, p["decay_shift"], elem), act], f"{node.name}/cur")
        if not safe:
            cur = b.wrap(cur, 32)
    if not (safe and keep_u == 0 and (a.bound << p["act_shift"]) <= half - 1):
        # Lava's 24-bit wrap: two corrections, the second reading the first result
        hi = b.op("Greater", [cur, b.const(half, elem)], f"{node.name}/hi")
        w1 = b.op("Where", [hi, b.op("Sub", [cur, b.const(2 * half, elem)], f"{node.name}/dn"), cur], f"{node.name}/w1")
        lo = b.op("LessOrEqual", [w1, b.const(-half, elem)], f"{node.name}/lo")
        cur = b.op("Where", [lo, b.op("Add", [cur, b.const(2 * half, elem)], f"{node.name}/up"), w1], f"{node.name}/w2")
    if keep_u != 0:
        b.op_to("Identity", [cur], u_out)
    v_in, v_out = b.state(f"{node.name}.v", op.in_shape(), elem)
    v_prev = b.op("Where", [reset, zero, v_in], f"{node.name}/v_reset") if reset else v_in
    pre = b.op("Add", [b.trunc_mul_shift(v_prev, keep_v, p["decay_shift"], elem), cur], f"{node.name}/pre")
    bias = op.bias_mant_s13.astype(np.int64) << op.bias_exp_u3
    if np.any(bias):
        pre = b.op("Add", [pre, b.bcast(bias, elem)], f"{node.name}/bias")
    v = b.op("Clip", [pre, b.const(-(half - 1), elem), b.const(half - 1, elem)], f"{node.name}/sat")
    s = b.op("Greater", [v, b.const(op.vth_u17 << p["vth_shift"], elem)], f"{node.name}/fire")
    b.op_to("Where", [s, zero, v], v_out)
    if isinstance(op, loihi.LoihiReadout):
        return Value(v_out, elem), v_out
    return Value(s, BOOL, 1), v_out


def _relay(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> tuple[Value, str | None]:
    op: loihi.GradedRelay = node.op  # type: ignore[assignment]
    a = _input_sum(b, node, terms)
    y = b.cast(a, I64).name
    if np.any(op.bias_s24):
        y = b.op("Add", [y, b.bcast(op.bias_s24.astype(np.int64), I64)], f"{node.name}/bias")
    return Value(y, I64, None), None


def padded_maxpool(b: FixedBuilder, x: str, name: str, op: loihi.FixedMaxPool) -> str:
    """The int64 window max of a pool with its own stride or padding (SpikeYOLO's SPPF: k 5, s 1,
    p 2) as ONNX MaxPool over float64: exact, the values being 32-bit sums plus a 24-bit bias, and
    MaxPool's padding never wins, as Lava's and ref-fixed's (fixed_point.maxpool_step)."""
    k, s, p = op.kernel, op.stride or op.kernel, op.padding
    wide = b.op("Cast", [x], f"{name}/f64", to=F64)
    pooled = b.op("MaxPool", [wide], f"{name}/max", kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
    return b.op("Cast", [pooled], f"{name}/i64", to=I64)


def _maxpool(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> tuple[Value, str | None]:
    op: loihi.FixedMaxPool = node.op  # type: ignore[assignment]
    a = _input_sum(b, node, terms)
    pre = b.cast(a, I64).name
    if np.any(op.bias_s24):
        pre = b.op("Add", [pre, b.bcast(op.bias_s24.astype(np.int64), I64)], f"{node.name}/bias")
    k = op.kernel
    c, h, w = op.in_shape()
    if op.stride not in (0, k) or op.padding:
        out = padded_maxpool(b, pre, node.name, op)
    else:
        if h % k or w % k:
            pre = b.op("Slice", [pre, b.const([0, 0], I64), b.const([(h // k) * k, (w // k) * k], I64),
                                 b.const([2, 3], I64)], f"{node.name}/crop")  # fmt: skip
        blocks = b.op("Reshape", [pre, b.const([0, c, h // k, k, w // k, k], I64)], f"{node.name}/blocks")
        out = b.op("ReduceMax", [blocks], f"{node.name}/max", axes=[3, 5], keepdims=0)
    r = op.out_shift_u5
    if r:
        out = b.floor_shift(b.op("Add", [out, b.const(1 << (r - 1), I64)], f"{node.name}/round"), r)
    return Value(out, I64, None), None


def _silu(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> tuple[Value, str | None]:
    """:func:`emsdeploy.ir.fixed_point.silu_step` in float64, the same operations in the same order."""
    op: loihi.FixedSiLU = node.op  # type: ignore[assignment]
    a = _input_sum(b, node, terms)
    af = b.op("Cast", [b.cast(a, I64).name], f"{node.name}/f64", to=F64)
    cur = b.op("Div", [b.op("Add", [af, b.bcast(op.bias_s24.astype(np.float64), F64)], f"{node.name}/b"),
                       b.const(op.scale_in, F64)], f"{node.name}/cur")  # fmt: skip
    m_in, m_out = b.state(f"{node.name}.m", op.in_shape(), F64)
    s_in, s_out = b.state(f"{node.name}.s", op.in_shape(), F64)
    carried = s_in if op.inplace else m_in
    lk = b.op("Mul", [b.op("Mul", [b.const(op.tau, F64), carried], f"{node.name}/tp"),
                      b.op("Sub", [b.const(1.0, F64), s_in], f"{node.name}/keep")], f"{node.name}/leak")  # fmt: skip
    m = b.op("Add", [lk, cur], f"{node.name}/m")
    reset = b.reset_flag(op.latency)
    if reset:
        m = b.op("Where", [reset, cur, m], f"{node.name}/mr")
    b.op_to("Identity", [m], m_out)
    e = b.op("Exp", [b.op("Neg", [m], f"{node.name}/neg")], f"{node.name}/exp")
    s = b.op("Div", [m, b.op("Add", [b.const(1.0, F64), e], f"{node.name}/den")], f"{node.name}/silu")
    b.op_to("Identity", [s], s_out)
    y = b.op("Round", [b.op("Mul", [s, b.const(op.scale_out, F64)], f"{node.name}/scaled")], f"{node.name}/rint")
    return Value(b.op("Cast", [y], f"{node.name}/y", to=I64), I64, None), None


def _integer_lif(b: FixedBuilder, node: Node, terms: Sequence[Value]) -> tuple[Value, str | None]:
    """:func:`emsdeploy.ir.fixed_point.integer_lif_step` (SpikeYOLO's I-LIF) in int64, the same
    operations: V = sat(((V' − s'·2^(k+f)) >> d) + ((a + b)·2^f)), then s = round half to even of
    clamp(V, 0, D·2^(k+f)) / 2^(k+f). The zero state at the reset step is ref-fixed's fresh state
    (it makes the carried term 0). Magnitudes: |a| < 2^31, |b| < 2^23, f <= 31, so below 2^63."""
    op: loihi.LoihiIntegerLIF = node.op  # type: ignore[assignment]
    name, qb, d = node.name, op.unit_bits, op.decay_shift_u4
    a = b.cast(_input_sum(b, node, terms), I64).name
    cur = b.op("Add", [a, b.bcast(op.bias_s24.astype(np.int64), I64)], f"{name}/bias")
    if op.frac_bits_u5:
        cur = b.op("Mul", [cur, b.const(1 << op.frac_bits_u5, I64)], f"{name}/frac")
    v_in, v_out = b.state(f"{name}.v", op.in_shape(), I64)
    s_in, s_out = b.state(f"{name}.s", op.in_shape(), I64)
    reset = b.reset_flag(op.latency)
    if reset:
        zero = b.const(0, I64)
        v_in = b.op("Where", [reset, zero, v_in], f"{name}/v_reset")
        s_in = b.op("Where", [reset, zero, s_in], f"{name}/s_reset")
    carried = b.op("Sub", [v_in, b.op("Mul", [s_in, b.const(1 << qb, I64)], f"{name}/unit")], f"{name}/soft")
    v = b.op("Add", [b.floor_shift(carried, d), cur], f"{name}/v")
    half = (1 << (b.p["uv_bits"] - 1)) - 1
    v = b.op("Clip", [v, b.const(-half, I64), b.const(half, I64)], f"{name}/sat")
    b.op_to("Identity", [v], v_out)
    c = b.op("Clip", [v, b.const(0, I64), b.const(op.levels << qb, I64)], f"{name}/clamp")
    if qb == 0:
        s = c
    else:  # c >= 0: Div is the floor; q + [r > h] + [r == h and q odd]
        q = b.op("Div", [c, b.const(1 << qb, I64)], f"{name}/q")
        r = b.op("Sub", [c, b.op("Mul", [q, b.const(1 << qb, I64)], f"{name}/qu")], f"{name}/r")
        h = b.const(1 << (qb - 1), I64)
        odd = b.op("Equal", [b.op("Mod", [q, b.const(2, I64)], f"{name}/par"), b.const(1, I64)], f"{name}/odd")
        up = b.op("Or", [b.op("Greater", [r, h], f"{name}/above"),
                         b.op("And", [b.op("Equal", [r, h], f"{name}/tie"), odd], f"{name}/even")], f"{name}/up")  # fmt: skip
        s = b.op("Add", [q, b.op("Cast", [up], f"{name}/upi", to=I64)], f"{name}/s")
    b.op_to("Identity", [s], s_out)
    return Value(s, I64, op.levels), v_out


FIXED_LOWERINGS: dict[type, Callable] = {
    loihi.LoihiLIF: _lif,
    loihi.LoihiReadout: _lif,
    loihi.GradedRelay: _relay,
    loihi.FixedMaxPool: _maxpool,
    loihi.FixedSiLU: _silu,
    loihi.LoihiIntegerLIF: _integer_lif,
}
