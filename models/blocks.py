"""EMS-ResNet building blocks (DESIGN.md §4).

Blocks pass real-valued currents (BN outputs and their sums) between each other; every
branch starts with a LIF, so adds and concats never see spikes. Submodule names and
positions follow the official code (``residual_function.<i>``, ``shortcut.<i>``), so module
paths, and therefore IR node names and reference fixtures, line up one to one.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import SeqConv2d, SeqMaxPool2d, TdBatchNorm
from .neurons import LIF, SiLUNeuron

__all__ = ["ConvSiLU", "EMSBlock2", "MSBlock", "NeuronParams", "Stem"]

GAMMA_INIT = 0.5  # α·V_th with α = 1
GAMMA_INIT_LAST = 0.1  # α·V_th with α = 0.2, last BN of every residual branch


class NeuronParams:
    """LIF parameters shared by every neuron of a model (no module-level globals)."""

    def __init__(self, tau: float = 0.25, v_th: float = 0.5, surrogate_width: float = 1.0, silu_inplace: bool = True):
        self.tau, self.v_th, self.surrogate_width, self.silu_inplace = tau, v_th, surrogate_width, silu_inplace

    def lif(self) -> LIF:
        return LIF(self.tau, self.v_th, self.surrogate_width)

    def silu(self) -> SiLUNeuron:
        return SiLUNeuron(self.tau, self.silu_inplace)


def _pad(k: int) -> int:
    return k // 2


class Stem(nn.Module):
    """Conv → tdBN on the input, no neuron (official ``Conv_1`` / ``Conv_2``)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = SeqConv2d(c1, c2, k, s, _pad(k), bias=False)
        self.bn = TdBatchNorm(c2, GAMMA_INIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ConvSiLU(nn.Module):
    """Conv → tdBN → SiLU neuron (official ``Conv``): a non-spiking head layer."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, neuron: NeuronParams | None = None) -> None:
        super().__init__()
        neuron = neuron or NeuronParams()
        self.conv = SeqConv2d(c1, c2, k, s, _pad(k), bias=False)
        self.bn = TdBatchNorm(c2, GAMMA_INIT)
        self.act = neuron.silu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _residual(c1: int, c2: int, hidden: int, k: int, s: int, neuron: NeuronParams) -> nn.Sequential:
    """LIF → conv(k, s) → BN → LIF → conv(k) → BN(γ₀ = 0.1)."""
    return nn.Sequential(
        neuron.lif(),
        SeqConv2d(c1, hidden, k, s, _pad(k), bias=False),
        TdBatchNorm(hidden, GAMMA_INIT),
        neuron.lif(),
        SeqConv2d(hidden, c2, k, 1, _pad(k), bias=False),
        TdBatchNorm(c2, GAMMA_INIT_LAST),
    )


class MSBlock(nn.Module):
    """MS-Block with identity shortcut, or EMS-Block1 when stride or width changes.

    ``out = R(x) + shortcut(x)``. The downsampling shortcut is
    ``MaxPool(s) → LIF → conv1×1 → BN`` (official ``BasicBlock_2``/``BasicBlock_1``), or without
    the LIF for the -ee ``BasicBlock_ms`` (``shortcut_lif=False``), whose 1×1 conv then sees
    real-valued currents.
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        k: int = 3,
        s: int = 1,
        hidden: int | None = None,
        shortcut_lif: bool = True,
        neuron: NeuronParams | None = None,
    ) -> None:
        super().__init__()
        neuron = neuron or NeuronParams()
        self.residual_function = _residual(c1, c2, hidden or c2, k, s, neuron)
        self.shortcut = nn.Sequential()
        if s != 1 or c1 != c2:
            layers: list[nn.Module] = [SeqMaxPool2d(s)]
            if shortcut_lif:
                layers.append(neuron.lif())
            layers += [SeqConv2d(c1, c2, 1, 1, 0, bias=False), TdBatchNorm(c2, GAMMA_INIT)]
            self.shortcut = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual_function(x) + self.shortcut(x)


class EMSBlock2(nn.Module):
    """EMS-Block2 (official ``Concat_res2`` / ``ConcatBlock_ms``).

    ``out = R(x) + MaxPool_s(cat[BN(conv1×1(LIF(x))) with c2 − c1 channels, x])``: the conv
    part comes first and the pool is applied after the concat, as in the official code.
    """

    def __init__(
        self, c1: int, c2: int, k: int = 3, s: int = 1, hidden: int | None = None, neuron: NeuronParams | None = None
    ) -> None:
        super().__init__()
        if c1 >= c2:
            raise ValueError(f"EMS-Block2 widens the channels: needs c_in < c_out, got {c1} -> {c2}")
        neuron = neuron or NeuronParams()
        self.residual_function = _residual(c1, c2, hidden or c2, k, s, neuron)
        self.shortcut = nn.Sequential(
            neuron.lif(),
            SeqConv2d(c1, c2 - c1, 1, 1, 0, bias=False),
            TdBatchNorm(c2 - c1, GAMMA_INIT),
        )
        self.pools = SeqMaxPool2d(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        widened = torch.cat([self.shortcut(x), x], dim=2)
        return self.residual_function(x) + self.pools(widened)
