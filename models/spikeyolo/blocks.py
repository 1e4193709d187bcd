"""SpikeYOLO's blocks (Luo et al., ECCV 2024), time-first ``[T, B, C, H, W]`` throughout.

Submodule names follow the official ``ultralytics/nn/modules/yolo_spikformer.py`` so that
official state_dict keys load one to one. Every neuron is an :class:`~models.neurons.IntegerLIF`
(I-LIF, spikes 0..D); every residual add is on real-valued BN outputs (membrane shortcuts),
never on spikes. The equivalences to the official classes:

=====================  ==============================  ======================================
ours                   official                        computes
=====================  ==============================  ======================================
:class:`GetT`          ``MS_GetT``                     layer 0; the input is already time-first
:class:`DownSampling`  ``MS_DownSampling``             [lif] → conv (bias) → BN
:class:`SpikeConv`     ``MS_StandardConv``/``SpikeConv``  lif → conv (no bias) → BN
                       ``SpikeConvWithoutBN``          lif → 1×1 conv with bias (``bn=False``)
:class:`SepRepConv`    ``SepRepConv``                  BNAndPad(1) → 1×1 → depthwise 3×3 (pad 0)
:class:`RepConv`       ``RepConv``                     1×1 → BNAndPad(1) → dw 3×3 (pad 0) → 1×1 → BN
:class:`SepConv`       ``SepConv``                     lif → 1×1 → BN → lif → dw k×k → BN → lif → SepRepConv → BN
:class:`AllConvBlock`  ``MS_AllConvBlock``             x + SepConv(x), then + conv2(conv1(·)) (3×3 SpikeConvs)
:class:`ConvBlock`     ``MS_ConvBlock``                x + SepConv(x), then + BN(RepConv(lif(BN(RepConv(lif(·))))))
:class:`SpikeSPPF`     ``SpikeSPPF``                   cv1, three chained max-pools of currents, cv2(cat)
=====================  ==============================  ======================================
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import SeqConv2d
from ..neurons import IntegerLIF
from .layers import BN_EPS, BNAndPad, SeqBatchNorm2d, SeqMaxPoolSame

__all__ = [
    "AllConvBlock",
    "ConvBlock",
    "DownSampling",
    "GetT",
    "ILIFParams",
    "RepConv",
    "SepConv",
    "SepRepConv",
    "SpikeConv",
    "SpikeSPPF",
]


class ILIFParams:
    """I-LIF and BN settings shared by every module of one model (no module-level globals)."""

    def __init__(self, decay: float = 0.25, levels: int = 4, bn_eps: float = BN_EPS) -> None:
        self.decay, self.levels, self.bn_eps = float(decay), int(levels), float(bn_eps)

    def lif(self) -> IntegerLIF:
        return IntegerLIF(self.decay, self.levels)

    def bn(self, c: int) -> SeqBatchNorm2d:
        return SeqBatchNorm2d(c, eps=self.bn_eps)

    def bn_pad(self, pad: int, c: int) -> BNAndPad:
        return BNAndPad(pad, c, eps=self.bn_eps)


class GetT(nn.Module):
    """Layer 0 (official ``MS_GetT``, which repeats the image T times). Our model encodes the
    input before the layers (:meth:`SpikeYOLO.encode`), so here it passes ``[T, B, C, H, W]`` on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class DownSampling(nn.Module):
    """``[encode_lif] → encode_conv (k, s, p, with bias) → encode_bn``; the stem has no LIF and
    sees real pixels."""

    def __init__(self, c1: int, c2: int, k: int, s: int, p: int, first: bool, params: ILIFParams) -> None:
        super().__init__()
        self.encode_conv = SeqConv2d(c1, c2, k, s, p)
        self.encode_bn = params.bn(c2)
        if not first:
            self.encode_lif = params.lif()
        self.first = bool(first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.first:
            x = self.encode_lif(x)
        return self.encode_bn(self.encode_conv(x))


class SpikeConv(nn.Module):
    """``lif → conv (pad k//2) → bn``; with ``bn=False`` the conv has a bias and no BN follows
    (official ``SpikeConvWithoutBN``, the head's last layer)."""

    def __init__(self, c1: int, c2: int, k: int, s: int, params: ILIFParams, bn: bool = True) -> None:
        super().__init__()
        self.lif = params.lif()
        self.conv = SeqConv2d(c1, c2, k, s, k // 2, bias=not bn)
        self.bn = params.bn(c2) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.lif(x))
        return y if self.bn is None else self.bn(y)


class SepRepConv(nn.Module):
    """``BNAndPad(1) → 1×1 (c1→c2) → depthwise 3×3, pad 0``: the padding is BN(0), from ``body.0``."""

    def __init__(self, c1: int, c2: int, params: ILIFParams) -> None:
        super().__init__()
        self.body = nn.Sequential(
            params.bn_pad(1, c1),
            nn.Sequential(SeqConv2d(c1, c2, 1, bias=False), SeqConv2d(c2, c2, 3, groups=c2, bias=False)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class RepConv(nn.Module):
    """``1×1 (c1→c1) → BNAndPad(1) → depthwise 3×3, pad 0 → 1×1 (c1→c2) → BN``: linear, no LIF;
    folds exactly into one zero-padded 3×3 conv with bias."""

    def __init__(self, c1: int, c2: int, params: ILIFParams) -> None:
        super().__init__()
        self.body = nn.Sequential(
            SeqConv2d(c1, c1, 1, bias=False),
            params.bn_pad(1, c1),
            nn.Sequential(SeqConv2d(c1, c1, 3, groups=c1, bias=False), SeqConv2d(c1, c2, 1, bias=False), params.bn(c2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SepConv(nn.Module):
    """Inverted separable conv (MobileNetV2 style, width 2·dim) with three I-LIFs."""

    def __init__(self, dim: int, kernel_size: int, params: ILIFParams) -> None:
        super().__init__()
        med = 2 * dim
        self.pwconv1 = SeqConv2d(dim, med, 1, bias=False)
        self.dwconv2 = SeqConv2d(med, med, kernel_size, padding=kernel_size // 2, groups=med, bias=False)
        self.pwconv3 = SepRepConv(med, dim, params)
        self.bn1, self.bn2, self.bn3 = params.bn(med), params.bn(med), params.bn(dim)
        self.lif1, self.lif2, self.lif3 = params.lif(), params.lif(), params.lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.pwconv1(self.lif1(x)))
        x = self.bn2(self.dwconv2(self.lif2(x)))
        return self.bn3(self.pwconv3(self.lif3(x)))


class AllConvBlock(nn.Module):
    """``x = x + SepConv(x)``; ``x + conv2(conv1(x))`` with 3×3 SpikeConvs widening by ``mlp_ratio``."""

    def __init__(self, dim: int, mlp_ratio: float, kernel_size: int, params: ILIFParams) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.Conv = SepConv(dim, kernel_size, params)
        self.conv1 = SpikeConv(dim, hidden, 3, 1, params)
        self.conv2 = SpikeConv(hidden, dim, 3, 1, params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv(x) + x
        return x + self.conv2(self.conv1(x))


class ConvBlock(nn.Module):
    """``x = x + SepConv(x)``; ``x + bn2(RepConv(lif2(bn1(RepConv(lif1(x))))))``, hidden ``mlp_ratio·dim``."""

    def __init__(self, dim: int, mlp_ratio: float, kernel_size: int, params: ILIFParams) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.Conv = SepConv(dim, kernel_size, params)
        self.lif1, self.lif2 = params.lif(), params.lif()
        self.conv1 = RepConv(dim, hidden, params)
        self.bn1 = params.bn(hidden)
        self.conv2 = RepConv(hidden, dim, params)
        self.bn2 = params.bn(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv(x) + x
        y = self.bn1(self.conv1(self.lif1(x)))
        return x + self.bn2(self.conv2(self.lif2(y)))


class SpikeSPPF(nn.Module):
    """``x = cv1(x)``; three chained stride-1 max-pools of the BN currents; ``cv2(cat[x, y1, y2, y3])``.

    Pooling currents equals pooling spikes here, because ``cv2`` starts with a (monotone) LIF.
    """

    def __init__(self, c1: int, c2: int, k: int, params: ILIFParams) -> None:
        super().__init__()
        hidden = c1 // 2
        self.cv1 = SpikeConv(c1, hidden, 1, 1, params)
        self.cv2 = SpikeConv(4 * hidden, c2, 1, 1, params)
        self.m = SeqMaxPoolSame(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        y3 = self.m(y2)
        return self.cv2(torch.cat((x, y1, y2, y3), 2))
