"""Box arithmetic for the loss and the evaluator."""

from __future__ import annotations

import math

import torch

__all__ = ["bbox_ciou", "xywh_to_xyxy"]


def xywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """Centre-size boxes ``[..., 4]`` to corner boxes."""
    half = b[..., 2:4] / 2
    return torch.cat((b[..., :2] - half, b[..., :2] + half), -1)


def bbox_ciou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU (Zheng et al. 2020) of matching rows of two ``[N, 4]`` centre-size box sets.

    ``CIoU = IoU − ρ²/c² − α·v``: the centre distance over the enclosing diagonal pulls boxes
    together even when they do not overlap, and ``v`` penalises a wrong aspect ratio.
    """
    a1, a2 = a[:, :2] - a[:, 2:4] / 2, a[:, :2] + a[:, 2:4] / 2
    b1, b2 = b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(min=0).prod(1)
    wa, ha = a[:, 2], a[:, 3] + eps
    wb, hb = b[:, 2], b[:, 3] + eps
    union = wa * ha + wb * hb - inter + eps
    iou = inter / union
    enclose = torch.max(a2, b2) - torch.min(a1, b1)
    c2 = enclose.pow(2).sum(1) + eps
    rho2 = (a[:, :2] - b[:, :2]).pow(2).sum(1)
    v = (4 / math.pi**2) * (torch.atan(wb / hb) - torch.atan(wa / ha)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)
