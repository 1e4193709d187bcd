"""SpikeYOLO's anchor-free head (official ``SpikeDetect``, YOLOv8 style with DFL) and its decoding.

Per scale, a box branch ``cv2`` and a class branch ``cv3`` of spiking convs; their outputs are
concatenated on channels (box first) and averaged over T: the raw output ``[B, 4·reg_max + nc,
ny, nx]``. :func:`decode_dfl` turns the raw outputs into boxes: the distribution focal loss
integral (softmax over ``reg_max`` bins, expectation with weights 0..reg_max−1) gives the four
distances left, top, right, bottom in grid units from the anchor point (x + 0.5, y + 0.5);
boxes are xywh in input pixels, classes are sigmoid scores, no objectness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .. import boxes
from .blocks import ILIFParams, SpikeConv

__all__ = ["DFL", "SpikeDetect", "decode_dfl"]

REG_MAX = 16


class DFL(nn.Module):
    """The DFL integral's fixed weights 0..c1−1, as a frozen 1×1 conv (official ``SpikeDFL.conv``;
    kept as a parameter so the official key ``model.<i>.dfl.conv.weight`` loads). Not spiking."""

    def __init__(self, c1: int = REG_MAX) -> None:
        super().__init__()
        self.c1 = int(c1)
        self.conv = nn.Conv2d(self.c1, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(self.c1, dtype=torch.float32).view(1, self.c1, 1, 1))

    def forward(self, box: torch.Tensor) -> torch.Tensor:
        """``[B, 4·c1, A]`` logits -> ``[B, 4, A]`` expected distances (grid units)."""
        b, _, a = box.shape
        return self.conv(box.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


class SpikeDetect(nn.Module):
    """Per scale ``cat(cv2[i](x), cv3[i](x))`` on channels, mean over T (official call order:
    ``cv2.0, cv3.0, cv2.1, …``).

    Args:
        nc: number of classes.
        ch: input channels per scale.
        strides: downsampling factor per scale (input size / grid size).
        params: the model's I-LIF and BN settings.
    """

    def __init__(self, nc: int, ch: Sequence[int], strides: Sequence[float], params: ILIFParams) -> None:
        super().__init__()
        self.nc = int(nc)
        self.nl = len(ch)
        self.reg_max = REG_MAX
        self.no = self.nc + 4 * self.reg_max
        self.strides = [float(s) for s in strides]
        self.register_buffer("stride", torch.tensor(self.strides), persistent=False)
        c2 = max(16, ch[0] // 4, 4 * self.reg_max)
        c3 = max(ch[0], min(self.nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(
                SpikeConv(c, c2, 3, 1, params),
                SpikeConv(c2, c2, 3, 1, params),
                SpikeConv(c2, 4 * self.reg_max, 1, 1, params, bn=False),
            )
            for c in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(
                SpikeConv(c, c3, 3, 1, params),
                SpikeConv(c3, c3, 3, 1, params),
                SpikeConv(c3, self.nc, 1, 1, params, bn=False),
            )
            for c in ch
        )
        self.dfl = DFL(self.reg_max)
        self.bias_init()

    def bias_init(self) -> None:
        """Box logits 1.0, class logits log(5/nc/(640/s)²) (≈ 0.01 objects per cell at 640)."""
        with torch.no_grad():
            for a, b, s in zip(self.cv2, self.cv3, self.strides):
                a[-1].conv.bias.fill_(1.0)
                b[-1].conv.bias.fill_(math.log(5 / self.nc / (640 / s) ** 2))

    def forward(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Raw outputs ``[B, 4·reg_max + nc, ny, nx]`` per scale (mean over T)."""
        return [torch.cat((box(x), cls(x)), 2).mean(0) for box, cls, x in zip(self.cv2, self.cv3, xs)]

    def decode(self, raws: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[B, 4 + nc, A]``: xywh in input pixels, then class scores (the official eval output)."""
        return decode_dfl(raws, self.strides, self.reg_max, self.dfl)


def decode_dfl(raws: Sequence[Any], strides: Sequence[float], reg_max: int = REG_MAX, dfl: DFL | None = None) -> Any:
    """Raw outputs ``[B, 4·reg_max + nc, ny, nx]`` per scale -> ``[B, 4 + nc, A]`` (numpy or torch):
    :func:`emsdeploy.models.boxes.decode_dfl`, with ``dfl`` (torch) taking the expectation in the
    official order of operations."""
    nc = int(raws[0].shape[1]) - 4 * reg_max
    return boxes.decode_dfl(raws, strides, nc, reg_max, integral=dfl)
