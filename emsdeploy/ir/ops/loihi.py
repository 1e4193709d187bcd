r"""Loihi fixed-point ops: what the quantize pass produces, ref-fixed runs and the Lava exporter lowers.

A quantized graph is a set of **populations** (``LoihiLIF``, ``LoihiReadout``, and the
non-standard ``FixedMaxPool`` and ``FixedSiLU``) whose inputs are **synapse groups**, one per
(source, population) pair. A population sums the integer payloads of all its inputs into one
``a_in`` each step (Lava's InPort adds every connected port). Synapse groups come in two kinds:

* chip synapses (``SynConv``, ``SynSparse``) read the spikes (0/1) or graded integers of a source
  population at step t and deliver at step ``t + 1 + delay_u6`` (every Lava synapse hop is one
  step; ``DelaySparse`` adds the rest);
* host terms (``HostConv``, ``HostSparse``) read the input image on the host, quantize it as
  ``x_int = rint(x · in_scale)``, and inject ``rshift_round(W·x_int, shift_u5)`` straight into
  ``a_in`` at step ``t + delay_u6`` (a source wired into ``a_in`` adds no step).

Integer units: a population with ``scale`` S receives ``round(S · I)`` for a current I (weight
units); its membrane v counts in units of ``1/(64 S)`` (Lava shifts synaptic input left by 6).
Every population is held in reset until step ``latency`` (0-based), the first step at which its
inputs carry valid data (DESIGN.md §8); before that it integrates bias and garbage, as Lava does.

Conventions (STYLE.md 8): integer fields carry their format (``weight_s8``, ``vth_u17``, ...);
weights keep PyTorch's layout and cross-correlation; the exporter flips them for Lava.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import IRValidationError
from ..kinds import Kind
from .base import Op, Shape, as_array, as_pair, param
from .synapse import conv_out

__all__ = [
    "CHIP_SYNAPSES",
    "HOST_TERMS",
    "POPULATIONS",
    "FixedMaxPool",
    "FixedSiLU",
    "GradedRelay",
    "HostConv",
    "HostSparse",
    "LoihiIntegerLIF",
    "LoihiLIF",
    "LoihiReadout",
    "SynConv",
    "SynSparse",
]


def _ints(value: Any, dtype: Any) -> NDArray[Any]:
    if isinstance(value, np.ndarray) and value.dtype == dtype and not value.flags.writeable:
        return value  # another op's array (dataclasses.replace): shared, never copied
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub" and arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise IRValidationError(f"expected integers, got values such as {arr.flat[0]}")
    return as_array(arr.astype(dtype))


def _shape3(value: Any, what: str) -> Shape:
    shape = tuple(int(s) for s in value)
    if len(shape) != 3 or min(shape) < 1:
        raise IRValidationError(f"{what} must be (C, H, W) with positive sizes, got {shape}")
    return shape


class _Population(Op):
    """Sums its inputs (one shape, the population's) into ``a_in`` each step."""

    arity = (1, None)
    accepts = frozenset({Kind.CURRENT})

    def in_shape(self) -> Shape:  # the shape of a_in
        raise NotImplementedError

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        for s in in_shapes:
            if tuple(s) != self.in_shape():
                raise IRValidationError(f"{self.type_name} sums inputs of shape {self.in_shape()}, got {tuple(s)}")

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return self.in_shape()


@dataclass(frozen=True, eq=False)
class LoihiLIF(_Population):
    r"""CUBA LIF population in Loihi fixed point (lava ``LIFReset`` with ``PyLifResetModelBitAcc``).

    With :math:`a` the int32 sum of the inputs at step t and integer arithmetic throughout:

    * ``t == latency``: :math:`u = v = 0` (``LIFReset`` at Lava step latency + 1);
    * :math:`u = \mathrm{wrap}_{24}(\mathrm{trunc}_0(u\,(4096 - du - 1)/4096) + (a \ll 6))`;
    * :math:`v = \mathrm{sat}_{24}(\mathrm{trunc}_0(v\,(4096 - dv)/4096) + u + (b \ll e_b))`;
    * :math:`s = [v > (v_{th} \ll 6)]`, then :math:`v = 0` where :math:`s` (u is not reset).

    :func:`emsdeploy.ir.fixed_point.lif_step` is the one implementation.

    The EMS-YOLO neuron maps to ``du = 4095`` (u is this step's input), ``dv = round(4096(1 − τ))``
    and ``vth = round(V_th · scale)``; ``tau`` and ``v_th`` keep the float values for reports.
    """

    du_u12: int = param(doc="current decay; 4095 keeps no synaptic memory")
    dv_u12: int = param(doc="voltage decay, 4096·(1 − τ)")
    vth_u17: int = param(unit="weight units", doc="threshold mantissa, compared as v > vth << 6")
    bias_mant_s13: NDArray[Any] = param(shape="(C, H, W)", doc="bias mantissa per neuron")
    bias_exp_u3: int = param(doc="bias exponent: v gains bias_mant << bias_exp every step")
    scale: float = param(unit="weight units per unit current", doc="S, a power of two")
    latency: int = param(default=0, unit="steps", doc="first valid step; held in reset before it")
    tau: float = param(default=0.25, unit="per step", doc="float leak the decay came from")
    v_th: float = param(default=0.5, unit="current", doc="float threshold vth came from")

    def __post_init__(self) -> None:
        object.__setattr__(self, "bias_mant_s13", _ints(self.bias_mant_s13, np.int32))
        for f in ("du_u12", "dv_u12", "vth_u17", "bias_exp_u3", "latency"):
            object.__setattr__(self, f, int(getattr(self, f)))
        for f in ("scale", "tau", "v_th"):
            object.__setattr__(self, f, float(getattr(self, f)))
        _shape3(self.bias_mant_s13.shape, "LoihiLIF bias_mant_s13")
        if self.latency < 0 or self.scale <= 0:
            raise IRValidationError(f"LoihiLIF: latency must be >= 0 and scale > 0, got {self.latency}, {self.scale}")

    def in_shape(self) -> Shape:
        return tuple(self.bias_mant_s13.shape)

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.SPIKE

    def num_parameters(self) -> int:
        return int(self.bias_mant_s13.size)


@dataclass(frozen=True, eq=False)
class LoihiReadout(_Population):
    r"""Non-spiking integrator read once after the run: the fixed-point ``Readout`` (mean over T).

    The same arithmetic as :class:`LoihiLIF` with ``du = 4095``, ``dv = 0`` (no leak) and the
    largest threshold, reset at step ``latency``; after the last of the T valid steps
    :math:`y = v / (64 \cdot \mathrm{scale} \cdot T)` (v is the integer sum of the T inputs plus
    T biases). Output: ``[B, C, H, W]`` floats; ref-fixed also records the integer v.
    """

    du_u12: int = param(doc="4095: u is this step's input")
    dv_u12: int = param(doc="0: v integrates without leak")
    vth_u17: int = param(doc="largest threshold: the integrator never fires in range")
    bias_mant_s13: NDArray[Any] = param(shape="(C, H, W)")
    bias_exp_u3: int = param()
    scale: float = param(unit="weight units per unit current")
    latency: int = param(default=0, unit="steps")
    timeless = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "bias_mant_s13", _ints(self.bias_mant_s13, np.int32))
        for f in ("du_u12", "dv_u12", "vth_u17", "bias_exp_u3", "latency"):
            object.__setattr__(self, f, int(getattr(self, f)))
        object.__setattr__(self, "scale", float(self.scale))
        _shape3(self.bias_mant_s13.shape, "LoihiReadout bias_mant_s13")

    def in_shape(self) -> Shape:
        return tuple(self.bias_mant_s13.shape)

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.ANALOG


@dataclass(frozen=True, eq=False)
class FixedMaxPool(_Population):
    r"""Max-pool of a current (no standard Loihi neuron model: a custom or host process).

    :math:`z = \mathrm{maxpool}_{k \times k,\,\mathrm{stride}\ s,\,\mathrm{padding}\ p}(a[t] + b)` in
    the population's scale (s = k and p = 0 by default: disjoint windows; padded taps never win,
    as PyTorch's −inf padding: SpikeYOLO's SPPF pools with k 5, s 1, p 2), sent as graded spikes :math:`y = \lfloor (z + 2^{r-1}) / 2^{r} \rfloor` (r =
    ``out_shift_u5``; y = z when r = 0), i.e. at scale ``scale / 2**r``. Stateless.
    :func:`emsdeploy.ir.fixed_point.maxpool_step` is the one implementation.
    """

    bias_s24: NDArray[Any] = param(shape="(C, H, W)", unit="weight units")
    kernel: int = param(default=2)
    scale: float = param(default=1.0, unit="weight units per unit current")
    out_shift_u5: int = param(default=0, doc="rounding right shift of the graded output")
    latency: int = param(default=0, unit="steps")
    stride: int = param(default=0, doc="step of the window; 0 means the kernel size")
    padding: int = param(default=0, doc="padded rows and columns on every side (never win; at most kernel // 2)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_shift_u5", int(self.out_shift_u5))
        object.__setattr__(self, "kernel", int(self.kernel))
        object.__setattr__(self, "stride", int(self.stride) or int(self.kernel))
        object.__setattr__(self, "padding", int(self.padding))
        if self.kernel < 1 or self.stride < 1 or not 0 <= self.padding <= self.kernel // 2:
            raise IRValidationError(
                f"FixedMaxPool: kernel and stride must be >= 1 and padding in 0..kernel//2, got "
                f"{self.kernel}, {self.stride}, {self.padding}"
            )
        object.__setattr__(self, "bias_s24", _ints(self.bias_s24, np.int32))
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "latency", int(self.latency))
        _shape3(self.bias_s24.shape, "FixedMaxPool bias_s24")

    @property
    def scale_out(self) -> float:
        return self.scale / (1 << self.out_shift_u5)

    def in_shape(self) -> Shape:
        return tuple(self.bias_s24.shape)

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        c, h, w = self.in_shape()
        k, s, p = self.kernel, self.stride, self.padding
        return (c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.ANALOG


@dataclass(frozen=True, eq=False)
class FixedSiLU(_Population):
    r"""The SiLU neuron on integer currents (no standard Loihi neuron model: custom or host).

    With :math:`I = (a + b)/s_{in}` in float64 and the state kept in float64:
    :math:`m = I` at step ``latency``, else :math:`m = \tau\,p\,(1 - s') + I` where
    :math:`p = s'` (``inplace``, the official recurrence) or :math:`m'`;
    :math:`s = m / (1 + e^{-m})`; output :math:`\mathrm{rint}(s \cdot s_{out})` as graded integers.
    :func:`emsdeploy.ir.fixed_point.silu_step` is the one implementation (ref-fixed and the Lava
    process call it).
    """

    bias_s24: NDArray[Any] = param(shape="(C, H, W)", unit="weight units")
    tau: float = param(default=0.25, unit="per step")
    inplace: bool = param(default=True)
    scale_in: float = param(default=1.0, unit="weight units per unit current")
    scale_out: float = param(default=1.0, unit="output units per unit")
    latency: int = param(default=0, unit="steps")

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", float(self.tau))
        object.__setattr__(self, "inplace", bool(self.inplace))
        object.__setattr__(self, "bias_s24", _ints(self.bias_s24, np.int32))
        object.__setattr__(self, "scale_in", float(self.scale_in))
        object.__setattr__(self, "scale_out", float(self.scale_out))
        object.__setattr__(self, "latency", int(self.latency))
        _shape3(self.bias_s24.shape, "FixedSiLU bias_s24")

    @property
    def scale(self) -> float:
        return self.scale_in

    def in_shape(self) -> Shape:
        return tuple(self.bias_s24.shape)

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.ANALOG


@dataclass(frozen=True, eq=False)
class GradedRelay(_Population):
    r"""A current carried as graded spikes (lava ``GradedVec`` with ``vth = 0``, plus a constant
    ``RingBuffer`` into its ``a_in`` for the bias): :math:`y = a + b`, sent in the same step.

    Relays carry current-valued intermediates (BN outputs, shortcut sums, concatenations,
    upsampled values) so that the groups reading them stay weight-shared convolutions instead
    of unrolled matrices. Neither GradedVec nor Conv shifts right: ``y`` is already in the
    units (``scale``) its readers' integer weights expect. Stateless; valid from ``latency``.
    """

    bias_s24: NDArray[Any] = param(shape="(C, H, W)", unit="weight units")
    scale: float = param(default=1.0, unit="weight units per unit current")
    latency: int = param(default=0, unit="steps")
    bound: int = param(default=0, unit="weight units", doc="proven bound on |y| (0: not computed)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "bias_s24", _ints(self.bias_s24, np.int32))
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "latency", int(self.latency))
        object.__setattr__(self, "bound", int(self.bound))
        _shape3(self.bias_s24.shape, "GradedRelay bias_s24")

    def in_shape(self) -> Shape:
        return tuple(self.bias_s24.shape)

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.ANALOG


@dataclass(frozen=True, eq=False)
class LoihiIntegerLIF(_Population):
    r"""SpikeYOLO's integer LIF (:class:`~emsdeploy.ir.IntegerLIF`) in exact fixed point: a
    programmable-neuron (Loihi 2 microcode) population, a custom process in Lava's simulator.

    Units. The input sum ``a`` and ``bias_s24`` count ``1/S`` of a current (S = ``scale`` =
    2**k, as for every population). The membrane V counts ``1/Q`` with ``Q = S · 2**f``
    (``f = frac_bits_u5``): the decay β = 2**−d (``d = decay_shift_u4``) divides by 2**d, and a
    membrane built from inputs that are multiples of 1/S over at most ``f/d + 1`` steps is a
    multiple of 2**(f − d·t)/Q at its step t, so with ``f = d·(T − 1)`` every decay of an
    inference is an exact arithmetic shift. With integer arithmetic throughout:

    * ``t == latency``: V = 0 and the last output s' = 0 (the population is held in reset before);
    * :math:`V = \mathrm{sat}_{24}\big(((V' - s' \ll (k+f)) \gg d) + ((a + b) \ll f)\big)`;
    * :math:`s = \mathrm{rhe}(\mathrm{clamp}(V, 0, D \ll (k+f)) / Q)`: with
      :math:`q = c \gg (k+f)` and :math:`r = c - (q \ll (k+f))`, :math:`s = q + [r > Q/2]
      + [r = Q/2 \wedge q \text{ odd}]` — round half to even, exactly ``torch.round``.

    So wherever ``a + b`` equals S·I exactly (the float currents are multiples of 1/S), s equals
    the float neuron's output bit for bit. The output is the integer 0..D (kind ``integer``): a
    graded spike of ceil(log2(D + 1)) bits, or D binary spikes in the Lava export's spike-driven
    mode. :func:`emsdeploy.ir.fixed_point.integer_lif_step` is the one implementation.
    """

    bias_s24: NDArray[Any] = param(shape="(C, H, W)", unit="weight units", doc="added to a every step")
    levels: int = param(default=4, doc="D, the largest integer emitted per step")
    decay_shift_u4: int = param(default=2, doc="d: the leak β = 2**-d is a right shift by d")
    frac_bits_u5: int = param(default=0, doc="f: fraction bits of the membrane beyond the input's 1/S")
    scale: float = param(default=1.0, unit="weight units per unit current", doc="S, a power of two")
    latency: int = param(default=0, unit="steps", doc="first valid step; held in reset before it")
    decay: float = param(default=0.25, unit="per step", doc="float leak the shift came from")

    def __post_init__(self) -> None:
        object.__setattr__(self, "bias_s24", _ints(self.bias_s24, np.int32))
        for f in ("levels", "decay_shift_u4", "frac_bits_u5", "latency"):
            object.__setattr__(self, f, int(getattr(self, f)))
        for f in ("scale", "decay"):
            object.__setattr__(self, f, float(getattr(self, f)))
        _shape3(self.bias_s24.shape, "LoihiIntegerLIF bias_s24")
        k = np.log2(self.scale) if self.scale > 0 else -1.0
        if k < 0 or k != int(k):
            raise IRValidationError(f"LoihiIntegerLIF: scale must be a power of two >= 1, got {self.scale}")
        if not 1 <= self.levels <= 255 or not 0 <= self.decay_shift_u4 <= 15 or not 0 <= self.frac_bits_u5 <= 31:
            raise IRValidationError(
                "LoihiIntegerLIF: levels must lie in 1..255, decay_shift in 0..15 and frac_bits in 0..31, got "
                f"{self.levels}, {self.decay_shift_u4}, {self.frac_bits_u5}"
            )
        if self.latency < 0:
            raise IRValidationError(f"LoihiIntegerLIF: latency must be >= 0, got {self.latency}")

    @property
    def unit_bits(self) -> int:
        """log2 Q = k + f: the membrane counts 1/Q of a current."""
        return int(np.log2(self.scale)) + self.frac_bits_u5

    def in_shape(self) -> Shape:
        return tuple(self.bias_s24.shape)

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.INTEGER

    def num_parameters(self) -> int:
        return int(self.bias_s24.size)


class _Term(Op):
    accepts = frozenset({Kind.SPIKE, Kind.INTEGER, Kind.ANALOG})

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.CURRENT


def _conv_geometry(op: Any) -> None:
    for f in ("stride", "padding", "dilation"):
        object.__setattr__(op, f, as_pair(getattr(op, f)))
    object.__setattr__(op, "groups", int(op.groups))
    if op.groups < 1:
        raise IRValidationError(f"{type(op).__name__}: groups must be a positive integer, got {op.groups}")
    object.__setattr__(op, "delay_u6", int(op.delay_u6))
    if op.delay_u6 < 0:
        raise IRValidationError(f"{type(op).__name__}: delay must be >= 0, got {op.delay_u6}")


def _conv_check(op: Any, weight: NDArray[Any], in_shapes: Sequence[Shape]) -> None:
    c = in_shapes[0][0]
    if c != weight.shape[1] * op.groups:
        raise IRValidationError(f"{type(op).__name__} expects {weight.shape[1] * op.groups} input channels, got {c}")


def _conv_shape(op: Any, weight: NDArray[Any], in_shapes: Sequence[Shape]) -> Shape:
    _, h, w = in_shapes[0]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = weight.shape[2:], op.stride, op.padding, op.dilation
    return (int(weight.shape[0]), conv_out(h, kh, sh, ph, dh), conv_out(w, kw, sw, pw, dw))


@dataclass(frozen=True, eq=False)
class SynConv(_Term):
    r"""Chip synapse group as a convolution, delivering at step t + 1 + ``delay_u6``.

    ``x`` is 0/1 spikes, or the graded integers of a relay or custom population (Lava's Conv with
    ``num_message_bits > 0``: the same sum, no shift); ``W = m · 2**e``
    (``weight_s8`` · 2**``weight_exp_s4``, e >= 0). Undelayed it is a lava ``Conv`` (which
    ignores ``weight_exp``, so the exporter passes the product):
    :math:`a = \mathrm{wrap}_{24}(W \star x)`. Lava's Conv has no delay, so a delayed one is
    lowered to a ``DelaySparse`` holding the same integer weights (as 2m with exponent e − 1):
    :math:`a = \mathrm{wrap}_{32}(W \star x)`, without the 24-bit wrap.
    """

    weight_s8: NDArray[Any] = param(shape="(C_out, C_in/groups, kH, kW)", doc="weight mantissas")
    weight_exp_s4: int = param(default=0, doc="shared exponent, >= 0 for Conv")
    stride: tuple[int, int] = param(default=(1, 1))
    padding: tuple[int, int] = param(default=(0, 0))
    dilation: tuple[int, int] = param(default=(1, 1))
    groups: int = param(default=1)
    delay_u6: int = param(default=0, unit="steps", doc="extra delay after the one-step hop")

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_s8", _ints(self.weight_s8, np.int16))
        object.__setattr__(self, "weight_exp_s4", int(self.weight_exp_s4))
        _conv_geometry(self)
        if self.weight_s8.ndim != 4:
            raise IRValidationError(f"SynConv weight must be 4-D, got {self.weight_s8.shape}")
        if self.weight_exp_s4 < 0:
            raise IRValidationError(
                f"SynConv: Lava's Conv cannot shift right; weight_exp must be >= 0, got {self.weight_exp_s4}"
            )

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        _conv_check(self, self.weight_s8, in_shapes)

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return _conv_shape(self, self.weight_s8, in_shapes)

    def effective_weight(self) -> NDArray[Any]:
        """The integer kernel Lava's Conv receives: m · 2**e."""
        return self.weight_s8.astype(np.int64) << self.weight_exp_s4

    def num_parameters(self) -> int:
        return int(np.count_nonzero(self.weight_s8))


@dataclass(frozen=True, eq=False)
class SynSparse(_Term):
    r"""Chip synapse group as a sparse matrix (lava ``Sparse``; ``DelaySparse`` when delayed).

    Rows index the destination, columns the source, both flattened in (C, H, W) order (CSR:
    ``weight_s8``, ``indices``, ``indptr``). Delivers at step t + 1 + ``delay_u6``:
    :math:`a = \lfloor 2^{e} \sum_j m_{ij} x_j \rfloor` (the exporter passes weights 2m with
    exponent e − 1, so Lava's mixed-sign truncation of the lowest bit is a no-op).
    """

    weight_s8: NDArray[Any] = param(shape="(nnz,)", doc="CSR data: weight mantissas")
    indices: NDArray[Any] = param(shape="(nnz,)", doc="CSR column (source) indices")
    indptr: NDArray[Any] = param(shape="(N_out + 1,)", doc="CSR row pointers")
    in_shape: Shape = param(shape="(C, H, W)")
    out_shape: Shape = param(shape="(C, H, W)")
    weight_exp_s4: int = param(default=0)
    delay_u6: int = param(default=0, unit="steps")

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_s8", _ints(self.weight_s8, np.int16))
        object.__setattr__(self, "indices", _ints(self.indices, np.int32))
        object.__setattr__(self, "indptr", _ints(self.indptr, np.int64))
        object.__setattr__(self, "in_shape", _shape3(self.in_shape, "SynSparse in_shape"))
        object.__setattr__(self, "out_shape", _shape3(self.out_shape, "SynSparse out_shape"))
        object.__setattr__(self, "weight_exp_s4", int(self.weight_exp_s4))
        object.__setattr__(self, "delay_u6", int(self.delay_u6))
        _csr_check(self, self.weight_s8)

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if tuple(in_shapes[0]) != self.in_shape:
            raise IRValidationError(f"SynSparse expects input {self.in_shape}, got {tuple(in_shapes[0])}")

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return self.out_shape

    def num_parameters(self) -> int:
        return int(np.count_nonzero(self.weight_s8))


def _csr_check(op: Any, data: NDArray[Any]) -> None:
    n_out = int(np.prod(op.out_shape))
    n_in = int(np.prod(op.in_shape))
    if op.indptr.shape != (n_out + 1,) or data.shape != op.indices.shape or int(op.indptr[-1]) != data.size:
        raise IRValidationError(
            f"{type(op).__name__}: CSR arrays do not describe a {n_out}×{n_in} matrix "
            f"(indptr {op.indptr.shape}, data {data.shape}, indices {op.indices.shape})"
        )
    if op.indices.size and (op.indices.min() < 0 or op.indices.max() >= n_in):
        raise IRValidationError(f"{type(op).__name__}: column index out of range 0..{n_in - 1}")


@dataclass(frozen=True, eq=False)
class HostConv(_Term):
    r"""Host term as a convolution of the quantized input, injected straight into ``a_in``.

    :math:`x_{int} = \mathrm{rint}(x \cdot \mathrm{in\_scale})`,
    :math:`a = \lfloor (W \star x_{int} + 2^{h-1}) / 2^{h} \rfloor` with ``h = shift_u5`` (no
    rounding term when h = 0), delivered at step t + ``delay_u6`` (no synapse hop).
    """

    weight_s24: NDArray[Any] = param(shape="(C_out, C_in/groups, kH, kW)", doc="host integer weights")
    shift_u5: int = param(default=0, doc="rounding right shift of the accumulator")
    in_scale: float = param(default=255.0, unit="integer steps per input unit")
    stride: tuple[int, int] = param(default=(1, 1))
    padding: tuple[int, int] = param(default=(0, 0))
    dilation: tuple[int, int] = param(default=(1, 1))
    groups: int = param(default=1)
    delay_u6: int = param(default=0, unit="steps")
    accepts = frozenset({Kind.ANALOG})

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_s24", _ints(self.weight_s24, np.int32))
        object.__setattr__(self, "shift_u5", int(self.shift_u5))
        object.__setattr__(self, "in_scale", float(self.in_scale))
        _conv_geometry(self)
        if self.weight_s24.ndim != 4:
            raise IRValidationError(f"HostConv weight must be 4-D, got {self.weight_s24.shape}")

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        _conv_check(self, self.weight_s24, in_shapes)

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return _conv_shape(self, self.weight_s24, in_shapes)

    def num_parameters(self) -> int:
        return int(np.count_nonzero(self.weight_s24))


@dataclass(frozen=True, eq=False)
class HostSparse(_Term):
    r"""Host term as a sparse matrix of the quantized input (CSR rows: destination, (C, H, W)
    order), same arithmetic as :class:`HostConv`."""

    weight_s24: NDArray[Any] = param(shape="(nnz,)")
    indices: NDArray[Any] = param(shape="(nnz,)")
    indptr: NDArray[Any] = param(shape="(N_out + 1,)")
    in_shape: Shape = param(shape="(C, H, W)")
    out_shape: Shape = param(shape="(C, H, W)")
    shift_u5: int = param(default=0)
    in_scale: float = param(default=255.0, unit="integer steps per input unit")
    delay_u6: int = param(default=0, unit="steps")
    accepts = frozenset({Kind.ANALOG})

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_s24", _ints(self.weight_s24, np.int32))
        object.__setattr__(self, "indices", _ints(self.indices, np.int32))
        object.__setattr__(self, "indptr", _ints(self.indptr, np.int64))
        object.__setattr__(self, "in_shape", _shape3(self.in_shape, "HostSparse in_shape"))
        object.__setattr__(self, "out_shape", _shape3(self.out_shape, "HostSparse out_shape"))
        object.__setattr__(self, "shift_u5", int(self.shift_u5))
        object.__setattr__(self, "in_scale", float(self.in_scale))
        object.__setattr__(self, "delay_u6", int(self.delay_u6))
        _csr_check(self, self.weight_s24)

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if tuple(in_shapes[0]) != self.in_shape:
            raise IRValidationError(f"HostSparse expects input {self.in_shape}, got {tuple(in_shapes[0])}")

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return self.out_shape

    def num_parameters(self) -> int:
        return int(np.count_nonzero(self.weight_s24))


POPULATIONS = (LoihiLIF, LoihiReadout, FixedMaxPool, FixedSiLU, GradedRelay, LoihiIntegerLIF)
CHIP_SYNAPSES = (SynConv, SynSparse)
HOST_TERMS = (HostConv, HostSparse)
