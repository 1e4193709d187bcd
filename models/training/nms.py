"""Turn decoded head outputs into a short list of detections per image."""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms

from .boxes import xywh_to_xyxy

__all__ = ["non_max_suppression"]


def non_max_suppression(
    pred: torch.Tensor, conf_thres: float = 0.001, iou_thres: float = 0.6, max_det: int = 100
) -> list[torch.Tensor]:
    """Per image ``[n, 6]``: ``x1, y1, x2, y2, score, class`` (pixels), best first.

    ``pred`` is :func:`emsdeploy.models.decode_raw`'s ``[B, N, nc+5]`` (xywh, objectness, class
    probabilities). A box's score is objectness × its best class probability; NMS is per class.
    """
    out = []
    for p in pred:
        p = p[p[:, 4] > conf_thres]
        score, cls = (p[:, 5:] * p[:, 4:5]).max(1) if p.shape[1] > 5 else (p[:, 4], torch.zeros_like(p[:, 4]))
        keep = score > conf_thres
        boxes, score, cls = xywh_to_xyxy(p[keep, :4]), score[keep], cls[keep]
        idx = batched_nms(boxes, score, cls, iou_thres)[:max_det]
        out.append(torch.cat((boxes[idx], score[idx, None], cls[idx, None].to(boxes.dtype)), 1))
    return out
