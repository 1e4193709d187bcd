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
    """Per-step ``k×k`` max-pool with stride ``k``. On spikes it is an OR over the window."""

    kernel: int = param(default=2)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", int(self.kernel))
        if self.kernel < 1:
            raise IRValidationError(f"MaxPool2d kernel must be >= 1, got {self.kernel}")

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        c, h, w = in_shapes[0]
        return (c, h // self.kernel, w // self.kernel)


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
