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

from ..boxes import _cat, _is_torch
from .blocks import ILIFParams, SpikeConv

__all__ = ["DFL", "SpikeDetect", "decode_dfl", "make_anchors"]

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


def make_anchors(shapes: Sequence[tuple[int, int]], strides: Sequence[float], like: Any) -> tuple[Any, Any]:
    """Anchor points ``[2, A]`` (x row, y row; grid units, cell centre) and strides ``[1, A]``,
    scales concatenated, cells row-major (y, then x); arrays of ``like``'s library and dtype."""
    pts, sts = [], []
    for (ny, nx), s in zip(shapes, strides):
        if _is_torch(like):
            ys, xs = torch.meshgrid(
                torch.arange(ny, dtype=like.dtype, device=like.device) + 0.5,
                torch.arange(nx, dtype=like.dtype, device=like.device) + 0.5,
                indexing="ij",
            )
            pts.append(torch.stack((xs.reshape(-1), ys.reshape(-1))))
            sts.append(torch.full((1, ny * nx), float(s), dtype=like.dtype, device=like.device))
        else:
            import numpy as np

            ys, xs = np.meshgrid(np.arange(ny) + 0.5, np.arange(nx) + 0.5, indexing="ij")
            pts.append(np.stack((xs.reshape(-1), ys.reshape(-1))).astype(like.dtype))
            sts.append(np.full((1, ny * nx), float(s), dtype=like.dtype))
    return _cat(pts, 1), _cat(sts, 1)


def decode_dfl(raws: Sequence[Any], strides: Sequence[float], reg_max: int = REG_MAX, dfl: DFL | None = None) -> Any:
    """Raw outputs ``[B, 4·reg_max + nc, ny, nx]`` per scale -> ``[B, 4 + nc, A]`` (numpy or torch).

    ``dfl``: the torch module to apply the integral with (the official op order); numpy and a
    missing ``dfl`` compute the same expectation as a weighted sum.
    """
    b, no = int(raws[0].shape[0]), int(raws[0].shape[1])
    shapes = [(int(r.shape[2]), int(r.shape[3])) for r in raws]
    flat = _cat([r.reshape(b, no, -1) for r in raws], 2)
    a = flat.shape[2]
    box, cls = flat[:, : 4 * reg_max], flat[:, 4 * reg_max :]
    anchors, stride_row = make_anchors(shapes, strides, flat)
    if _is_torch(flat):
        if dfl is None:
            dfl = DFL(reg_max).to(flat.device, flat.dtype)
        dist = dfl(box)
        scores = cls.sigmoid()
    else:
        import numpy as np

        logits = box.reshape(b, 4, reg_max, a)
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        prob = e / e.sum(axis=2, keepdims=True)
        dist = (prob * np.arange(reg_max, dtype=flat.dtype).reshape(1, 1, reg_max, 1)).sum(axis=2)
        scores = 1.0 / (1.0 + np.exp(-cls))
    lt, rb = dist[:, :2], dist[:, 2:]
    x1y1, x2y2 = anchors[None] - lt, anchors[None] + rb
    xywh = _cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * stride_row[None]
    return _cat((xywh, scores), 1)
