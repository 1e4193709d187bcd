"""Neuron populations: stateful per-step units (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import IRValidationError
from ..kinds import Kind
from .base import Op, Shape, param

__all__ = ["LIF", "IntegerLIF", "SiLUNeuron"]


@dataclass(frozen=True, eq=False)
class LIF(Op):
    r"""Leaky integrate-and-fire population with multiplicative hard reset (paper eq. 1–2).

    Its inputs are summed (a population lists its incoming synapse groups):
    :math:`I[t] = \sum_j x_j[t]`,
    :math:`U[t] = \tau\,U[t-1]\,(1 - S[t-1]) + I[t]` (:math:`U[-1] = 0`),
    :math:`S[t] = \mathbb{1}[U[t] > V_{th}]` (strict).
    """

    tau: float = param(default=0.25, unit="per step", doc="leak factor τ (the paper's decay)")
    v_th: float = param(default=0.5, unit="current", doc="threshold, compared strictly")
    arity = (1, None)
    # Analog values (a SiLU neuron's output) drive a membrane directly, like an injected
    # current; spikes never do: they must pass through a synapse group first.
    accepts = frozenset({Kind.CURRENT, Kind.ANALOG})

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", float(self.tau))
        object.__setattr__(self, "v_th", float(self.v_th))
        if not 0.0 <= self.tau <= 1.0:
            raise IRValidationError(f"LIF tau must lie in [0, 1], got {self.tau}")

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if len({tuple(s) for s in in_shapes}) != 1:
            raise IRValidationError(f"LIF inputs must share one shape, got {list(in_shapes)}")

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.SPIKE


@dataclass(frozen=True, eq=False)
class SiLUNeuron(Op):
    r"""The official SiLU ``mem_update``: leaky, real-valued output, no spikes.

    ``inplace=True`` (official checkpoints): :math:`m[t] = \tau\,s[t-1](1 - s[t-1]) + I[t]`;
    ``inplace=False``: :math:`m[t] = \tau\,m[t-1](1 - s[t-1]) + I[t]`; :math:`s[t] = \mathrm{SiLU}(m[t])`.
    Inputs are summed like a LIF's.
    """

    tau: float = param(default=0.25, unit="per step")
    inplace: bool = param(default=True, doc="official in-place recurrence")
    arity = (1, None)
    accepts = frozenset({Kind.CURRENT, Kind.ANALOG})

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", float(self.tau))
        object.__setattr__(self, "inplace", bool(self.inplace))

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if len({tuple(s) for s in in_shapes}) != 1:
            raise IRValidationError(f"SiLUNeuron inputs must share one shape, got {list(in_shapes)}")

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.ANALOG


@dataclass(frozen=True, eq=False)
class IntegerLIF(Op):
    r"""SpikeYOLO's integer LIF (I-LIF): soft reset by the emitted integer, spikes 0..D.

    Inputs are summed like a LIF's: :math:`I[t] = \sum_j x_j[t]`,
    :math:`U[t] = (U[t-1] - S[t-1])\,\beta + I[t]` (:math:`U[-1] = S[-1] = 0`),
    :math:`S[t] = \mathrm{round}(\mathrm{clamp}(U[t], 0, D))` with round half to even
    (``torch.round``). At T = 1 it is stateless: ``S = round(clamp(I, 0, D))``.
    """

    decay: float = param(default=0.25, unit="per step", doc="leak factor β applied after the reset")
    levels: int = param(default=4, doc="D, the largest integer a neuron emits in one step")
    arity = (1, None)
    accepts = frozenset({Kind.CURRENT, Kind.ANALOG})

    def __post_init__(self) -> None:
        object.__setattr__(self, "decay", float(self.decay))
        object.__setattr__(self, "levels", int(self.levels))
        if not 0.0 <= self.decay <= 1.0:
            raise IRValidationError(f"IntegerLIF decay must lie in [0, 1], got {self.decay}")
        if not 1 <= self.levels <= 255:
            raise IRValidationError(f"IntegerLIF levels D must lie in 1..255, got {self.levels}")

    def check_inputs(self, in_shapes: Sequence[Shape], in_kinds: Sequence[Kind]) -> None:
        super().check_inputs(in_shapes, in_kinds)
        if len({tuple(s) for s in in_shapes}) != 1:
            raise IRValidationError(f"IntegerLIF inputs must share one shape, got {list(in_shapes)}")

    def output_kind(self, in_kinds: Sequence[Kind]) -> Kind:
        return Kind.INTEGER
