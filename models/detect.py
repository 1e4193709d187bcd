"""YOLO detection head: 1×1 conv on currents, mean over T; its boxes decode in :mod:`.boxes`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .boxes import decode_raw
from .layers import SeqConv2d

__all__ = ["Detect"]


class Detect(nn.Module):
    """Per-scale 1×1 conv (with bias) on the real-valued block output, averaged over T.

    The head reads currents, not spikes: its input is the BN sum that would feed the next
    LIF. Args:
        nc: number of classes.
        anchors: per scale, ``2·na`` anchor sizes in pixels.
        ch: input channels per scale.
        strides: downsampling factor per scale (input size / grid size).
    """

    def __init__(
        self, nc: int, anchors: Sequence[Sequence[float]], ch: Sequence[int], strides: Sequence[float]
    ) -> None:
        super().__init__()
        self.nc = int(nc)
        self.no = self.nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        stride_t = torch.tensor([float(s) for s in strides])
        self.register_buffer("stride", stride_t, persistent=False)
        grid_anchors = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2) / stride_t.view(-1, 1, 1)
        self.register_buffer("anchors", _check_anchor_order(grid_anchors, stride_t))
        self.m = nn.ModuleList(SeqConv2d(c, self.no * self.na, 1) for c in ch)
        self._initialize_biases()

    def _initialize_biases(self) -> None:
        """Objectness and class priors (Lin et al. 2017 §3.3), as YOLOv5 initialises them."""
        for conv, s in zip(self.m, self.stride.tolist()):
            b = conv.bias.detach().view(self.na, -1)
            b[:, 4] += math.log(8 / (640 / s) ** 2)
            b[:, 5:] += math.log(0.6 / (self.nc - 0.999999))

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Return the raw outputs ``[B, na, ny, nx, nc+5]`` per scale (mean over T, before sigmoid)."""
        raws = []
        for conv, x in zip(self.m, xs):
            y = conv(x)
            t, b, _, ny, nx = y.shape
            y = y.view(t, b, self.na, self.no, ny, nx).permute(0, 1, 2, 4, 5, 3)
            raws.append(y.sum(0) / t)
        return raws

    def decode(self, raws: Sequence[torch.Tensor]) -> torch.Tensor:
        return decode_raw(raws, self.anchors, self.stride.tolist())


def _check_anchor_order(anchors: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Flip the anchor sets if their size order disagrees with the stride order (YOLOv5 rule)."""
    area = anchors.prod(-1).view(-1)
    if (area[-1] - area[0]).sign() != (strides[-1] - strides[0]).sign():
        return anchors.flip(0)
    return anchors
