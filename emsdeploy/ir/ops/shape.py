"""Ops that combine or resample values without weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import IRValidationError
from ..kinds import Kind
from .base import Op, Shape, param

__all__ = ["Add", "Concat", "MaxPool2d", "Upsample"]


@dataclass(frozen=True, eq=False)
class Add(Op):
    """Element-wise sum of currents (membrane shortcuts add BN outputs, never spikes); an
    analog operand (a SiLU neuron's output on an identity shortcut) counts as a current."""

    arity = (2, None)
    accepts = frozenset({Kind.CURRENT, Kind.ANALOG})

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if len({tuple(s) for s in in_shapes}) != 1:
            raise IRValidationError(f"Add inputs must share one shape, got {list(in_shapes)}")

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.CURRENT


@dataclass(frozen=True, eq=False)
class Concat(Op):
    """Channel concatenation in input order. Spikes concatenate only with spikes of their kind; a mix of
    currents and analog values (a SiLU output beside a block output) is a current."""

    arity = (1, None)

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if len({tuple(s[1:]) for s in in_shapes}) != 1:
            raise IRValidationError(f"Concat inputs must share H and W, got {list(in_shapes)}")
        if ({Kind.SPIKE, Kind.INTEGER} & set(in_kinds)) and len(set(in_kinds)) != 1:
            raise IRValidationError(f"Concat cannot mix spikes with other values, got {[k.value for k in in_kinds]}")

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return in_kinds[0] if len(set(in_kinds)) == 1 else Kind.CURRENT

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        return (sum(s[0] for s in in_shapes), *in_shapes[0][1:])


@dataclass(frozen=True, eq=False)
class MaxPool2d(Op):
    """Per-step ``k×k`` max-pool (PyTorch ``max_pool2d``, floor mode). On binary spikes it is an
    OR over the window. ``stride`` defaults to ``k`` (EMS-YOLO's pools); ``padding`` pads every
    side with −inf, so a padded tap never wins (SpikeYOLO's SPPF: k 5, stride 1, padding 2).

    Backends that only implement the plain pool (stride k, no padding: the Loihi fan-in, NIR)
    check :attr:`plain` and refuse the others by name.
    """

    kernel: int = param(default=2)
    stride: int = param(default=0, doc="step of the window; 0 means the kernel size")
    padding: int = param(default=0, doc="−inf rows and columns on every side (at most kernel // 2)")

    def __post_init__(self) -> None:
        for f in ("kernel", "stride", "padding"):
            object.__setattr__(self, f, int(getattr(self, f)))
        if self.kernel < 1:
            raise IRValidationError(f"MaxPool2d kernel must be >= 1, got {self.kernel}")
        if self.stride == 0:
            object.__setattr__(self, "stride", self.kernel)
        if self.stride < 1:
            raise IRValidationError(f"MaxPool2d stride must be >= 1, got {self.stride}")
        if not 0 <= self.padding <= self.kernel // 2:  # torch's bound: a window is never all padding
            raise IRValidationError(
                f"MaxPool2d padding must lie in 0..kernel//2 = {self.kernel // 2}, got {self.padding}"
            )

    @property
    def plain(self) -> bool:
        """Stride = kernel and no padding: disjoint windows (what every backend supports)."""
        return self.stride == self.kernel and self.padding == 0

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        c, h, w = in_shapes[0]
        k, s, p = self.kernel, self.stride, self.padding
        return (c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if min(self.output_shape(in_shapes)[1:]) < 1:
            raise IRValidationError(f"MaxPool2d output would be empty for input {in_shapes[0]}")


@dataclass(frozen=True, eq=False)
class Upsample(Op):
    """Nearest-neighbour upsampling by an integer factor at every step."""

    scale: int = param(default=2)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", int(self.scale))
        if self.scale < 1:
            raise IRValidationError(f"Upsample scale must be >= 1, got {self.scale}")

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        c, h, w = in_shapes[0]
        return (c, h * self.scale, w * self.scale)
