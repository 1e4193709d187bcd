"""Synapse groups: weighted connections whose outputs are currents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from ...errors import IRValidationError
from ..kinds import Kind
from .base import Op, Shape, as_array, as_pair, param

__all__ = ["Affine", "Conv2d"]


def conv_out(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@dataclass(frozen=True, eq=False)
class Conv2d(Op):
    r"""2-D cross-correlation (PyTorch convention) applied at every step:
    :math:`y[t] = W \star x[t] + b`. Spike inputs make it an accumulate-only synapse group."""

    weight: NDArray[Any] = param(shape="(C_out, C_in/groups, kH, kW)")
    bias: NDArray[Any] | None = param(default=None, shape="(C_out,)")
    stride: tuple[int, int] = param(default=(1, 1))
    padding: tuple[int, int] = param(default=(0, 0), doc="symmetric zero padding")
    dilation: tuple[int, int] = param(default=(1, 1))
    groups: int = param(default=1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", as_array(self.weight))
        if self.bias is not None:
            object.__setattr__(self, "bias", as_array(self.bias))
        for f in ("stride", "padding", "dilation"):
            object.__setattr__(self, f, as_pair(getattr(self, f)))
        object.__setattr__(self, "groups", int(self.groups))
        if self.groups < 1:
            raise IRValidationError(f"Conv2d: groups must be a positive integer, got {self.groups}")
        if min(self.stride + self.dilation) < 1 or min(self.padding) < 0:
            raise IRValidationError(
                f"Conv2d: stride and dilation must be >= 1 and padding >= 0, got {self.stride}, "
                f"{self.dilation}, {self.padding}"
            )
        if self.weight.ndim != 4:
            raise IRValidationError(f"Conv2d weight must be 4-D (C_out, C_in/groups, kH, kW), got {self.weight.shape}")
        if self.weight.shape[0] % self.groups:
            raise IRValidationError(f"Conv2d: C_out {self.weight.shape[0]} not divisible by groups {self.groups}")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise IRValidationError(f"Conv2d bias must be ({self.weight.shape[0]},), got {self.bias.shape}")
        if min(self.stride) < 1 or min(self.padding) < 0 or min(self.dilation) < 1:
            raise IRValidationError(f"Conv2d: bad stride/padding/dilation {self.stride}/{self.padding}/{self.dilation}")

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1] * self.groups)

    @property
    def kernel_size(self) -> tuple[int, int]:
        return (int(self.weight.shape[2]), int(self.weight.shape[3]))

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        c = in_shapes[0][0]
        if c != self.in_channels:
            raise IRValidationError(f"Conv2d expects {self.in_channels} input channels, got {c}")
        if min(self.output_shape(in_shapes)[1:]) < 1:
            raise IRValidationError(f"Conv2d output would be empty for input {in_shapes[0]}")

    def output_shape(self, in_shapes: Sequence[Shape]) -> Shape:
        _, h, w = in_shapes[0]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return (self.out_channels, conv_out(h, kh, sh, ph, dh), conv_out(w, kw, sw, pw, dw))

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.CURRENT

    def num_parameters(self) -> int:
        return int(self.weight.size + (0 if self.bias is None else self.bias.size))


@dataclass(frozen=True, eq=False)
class Affine(Op):
    r"""Per-channel affine map :math:`y = a_c\,x + b_c`: tdBN at inference
    (:math:`a = \gamma/\sqrt{\sigma^2+\epsilon}`, :math:`b = \beta - \mu a`), kept in float64."""

    scale: NDArray[Any] = param(shape="(C,)")
    shift: NDArray[Any] = param(shape="(C,)")
    accepts = frozenset({Kind.CURRENT, Kind.ANALOG})

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", as_array(self.scale))
        object.__setattr__(self, "shift", as_array(self.shift))
        if self.scale.ndim != 1 or self.scale.shape != self.shift.shape:
            raise IRValidationError(
                f"Affine scale and shift must be (C,), got {self.scale.shape} and {self.shift.shape}"
            )

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if in_shapes[0][0] != self.scale.shape[0]:
            raise IRValidationError(f"Affine has {self.scale.shape[0]} channels, input has {in_shapes[0][0]}")

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.CURRENT

    def num_parameters(self) -> int:
        return int(self.scale.size + self.shift.size)
