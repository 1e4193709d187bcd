"""Graph boundary ops: the input, the time readout, and host-side box decoding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import IRValidationError
from ..kinds import Kind
from .base import Op, Shape, as_array, param

__all__ = ["DECODES", "DFLDecode", "Decode", "Input", "Readout"]

ENCODINGS = ("direct", "frames")


@dataclass(frozen=True, eq=False)
class Input(Op):
    """The network input at one step.

    ``direct``: the same image ``[B, C, H, W]`` (values in [0, 1]) at every step.
    ``frames``: event frame ``t`` of ``[B, T, C, H, W]`` at step ``t``.
    """

    shape: Shape = param(shape="(C, H, W)")
    encoding: str = param(default="direct", doc="direct | frames")
    arity = (0, 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise IRValidationError(f"Input shape must be (C, H, W) with positive sizes, got {self.shape}")
        if self.encoding not in ENCODINGS:
            raise IRValidationError(f"Input encoding {self.encoding!r} unsupported; supported: {', '.join(ENCODINGS)}")

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return self.shape

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.ANALOG


@dataclass(frozen=True, eq=False)
class Readout(Op):
    r"""Mean over time of its input: :math:`y = \frac{1}{T}\sum_{t<T} x[t]`, produced after the last step.

    The detection head reads the time-averaged 1×1-conv output (official ``Detect``: sum over T / T).
    """

    accepts = frozenset({Kind.CURRENT, Kind.ANALOG})
    timeless = True

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.ANALOG


@dataclass(frozen=True, eq=False)
class Decode(Op):
    r"""YOLOv5 box decoding on the host, one input per scale (``[na·no, ny, nx]`` readouts).

    With :math:`s = \sigma(r)`: :math:`xy = (2 s_{xy} - 0.5 + g)\,\mathrm{stride}`,
    :math:`wh = (2 s_{wh})^2 \cdot \mathrm{anchor}\cdot\mathrm{stride}`; output ``[N, no]`` rows in
    (scale, anchor, y, x) order: xywh in pixels, objectness, class scores.
    """

    nc: int = param(doc="number of classes")
    anchors: NDArray[Any] = param(unit="grid cells", shape="(nl, na, 2)")
    strides: tuple[float, ...] = param(unit="input pixels per grid cell", shape="(nl,)")
    arity = (1, None)
    accepts = frozenset({Kind.ANALOG})
    timeless = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchors", as_array(self.anchors, np.float32))
        object.__setattr__(self, "strides", tuple(float(s) for s in self.strides))
        object.__setattr__(self, "nc", int(self.nc))
        if self.anchors.ndim != 3 or self.anchors.shape[2] != 2 or self.anchors.shape[0] != len(self.strides):
            raise IRValidationError(
                f"Decode anchors must be (nl, na, 2) with nl = len(strides), got {self.anchors.shape}"
            )

    @property
    def na(self) -> int:
        return int(self.anchors.shape[1])

    @property
    def no(self) -> int:
        return self.nc + 5

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if len(in_shapes) != len(self.strides):
            raise IRValidationError(f"Decode has {len(self.strides)} scales but {len(in_shapes)} inputs")
        for i, s in enumerate(in_shapes):
            if len(s) != 3 or s[0] != self.na * self.no:
                raise IRValidationError(
                    f"Decode input {i} must have na·(nc+5) = {self.na * self.no} channels, got shape {s}"
                )

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return (self.na * sum(s[1] * s[2] for s in in_shapes), self.no)


@dataclass(frozen=True, eq=False)
class DFLDecode(Op):
    r"""Anchor-free YOLOv8 / SpikeYOLO decoding on the host, one input per scale
    (``[4·reg_max + nc, ny, nx]`` readouts: box bins first, then class logits).

    Each side (l, t, r, b) is :math:`\sum_i i\,\mathrm{softmax}(z)_i` over ``reg_max`` bins (DFL);
    anchors at cell centres (x + 0.5, y + 0.5); ``x1y1 = a − lt``, ``x2y2 = a + rb``; the box is
    centre and size times the stride; classes through a sigmoid; no objectness. Output
    ``[4 + nc, A]`` (the official ``pred``), A = Σ ny·nx with scales flattened row-major.
    """

    nc: int = param(doc="number of classes")
    strides: tuple[float, ...] = param(unit="input pixels per grid cell", shape="(nl,)")
    reg_max: int = param(default=16, doc="DFL bins per box side")
    arity = (1, None)
    accepts = frozenset({Kind.ANALOG})
    timeless = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "strides", tuple(float(s) for s in self.strides))
        object.__setattr__(self, "nc", int(self.nc))
        object.__setattr__(self, "reg_max", int(self.reg_max))
        if self.nc < 1 or self.reg_max < 1:
            raise IRValidationError(f"DFLDecode nc and reg_max must be >= 1, got {self.nc} and {self.reg_max}")
        if not self.strides or min(self.strides) <= 0:
            raise IRValidationError(f"DFLDecode strides must be positive, one per scale, got {self.strides}")

    @property
    def no(self) -> int:
        """Channels of one scale's readout: 4·reg_max box bins + nc class logits."""
        return 4 * self.reg_max + self.nc

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if len(in_shapes) != len(self.strides):
            raise IRValidationError(f"DFLDecode has {len(self.strides)} scales but {len(in_shapes)} inputs")
        for i, s in enumerate(in_shapes):
            if len(s) != 3 or s[0] != self.no:
                raise IRValidationError(
                    f"DFLDecode input {i} must have 4·reg_max + nc = {self.no} channels, got shape {s}"
                )

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return (4 + self.nc, sum(s[1] * s[2] for s in in_shapes))


DECODES = (Decode, DFLDecode)  # the host-side box decodings: timeless, run once on the readouts
