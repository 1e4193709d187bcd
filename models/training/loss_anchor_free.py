"""The anchor-free YOLOv8 detection loss, for SpikeYOLO's raw head outputs.

``loss = B · (box·L_iou + dfl·L_dfl + cls·L_cls) / Σ target scores`` with

- task-aligned assignment (Feng et al., TOOD 2021): each ground truth takes the ``topk`` anchor
  points inside it with the highest ``score^α · IoU^β`` (score: the predicted probability of its
  class); an anchor claimed by several keeps the best-overlapping one. The soft class target is
  the alignment, rescaled per ground truth so its best anchor gets that anchor's IoU;
- ``L_cls``: BCE of all class logits against those soft targets;
- ``L_iou``: ``1 − CIoU`` of the positives' decoded boxes, weighted by their target score;
- ``L_dfl``: distribution focal loss (Li et al. 2020): cross-entropy of the two bins around each
  target distance (left, top, right, bottom, in grid units), weighted linearly, per positive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .boxes import bbox_ciou

__all__ = ["AnchorFreeHyp", "AnchorFreeLoss", "assign_task_aligned"]


@dataclass(frozen=True)
class AnchorFreeHyp:
    """YOLOv8's default gains and assigner settings (``ultralytics/cfg/default.yaml``, ``tal.py``)."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5
    topk: int = 10
    alpha: float = 0.5
    beta: float = 6.0


def _xyxy_to_xywh(b: torch.Tensor) -> torch.Tensor:
    return torch.cat(((b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]), -1)


def _pairwise_iou(gt: torch.Tensor, pred: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Plain IoU of ``[B, M, 4]`` against ``[B, A, 4]`` corner boxes -> ``[B, M, A]``."""
    lt = torch.max(gt[:, :, None, :2], pred[:, None, :, :2])
    rb = torch.min(gt[:, :, None, 2:], pred[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_g = (gt[..., 2:] - gt[..., :2]).clamp(min=0).prod(-1)
    area_p = (pred[..., 2:] - pred[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_g[:, :, None] + area_p[:, None, :] - inter + eps)


@torch.no_grad()
def assign_task_aligned(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_mask: torch.Tensor,
    hyp: AnchorFreeHyp,
    eps: float = 1e-9,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Task-aligned assignment.

    Args:
        scores: ``[B, A, nc]`` predicted probabilities; ``boxes``: ``[B, A, 4]`` predicted corners
            (pixels); ``points``: ``[A, 2]`` anchor points (pixels).
        gt_labels: ``[B, M]`` class indices; ``gt_boxes``: ``[B, M, 4]`` corners (pixels);
            ``gt_mask``: ``[B, M]`` true where a ground truth exists (padding is false).

    Returns:
        ``(target_boxes [B, A, 4], target_scores [B, A, nc], foreground [B, A])``.
    """
    b, a, nc = scores.shape
    m = gt_boxes.shape[1]
    if m == 0:
        return (
            torch.zeros_like(boxes),
            torch.zeros_like(scores),
            torch.zeros(b, a, dtype=torch.bool, device=scores.device),
        )
    lt = points[None, None] - gt_boxes[:, :, None, :2]
    rb = gt_boxes[:, :, None, 2:] - points[None, None]
    inside = torch.cat((lt, rb), -1).amin(-1) > eps  # [B, M, A]
    candidate = inside & gt_mask[:, :, None]
    iou = _pairwise_iou(gt_boxes, boxes).clamp(min=0) * candidate
    cls_score = scores.gather(2, gt_labels.long().clamp(0, nc - 1)[:, None, :].expand(b, a, m)).permute(0, 2, 1)
    align = cls_score.pow(hyp.alpha) * iou.pow(hyp.beta) * candidate
    k = min(hyp.topk, a)
    top = align.topk(k, dim=-1).indices
    chosen = torch.zeros_like(candidate).scatter_(-1, top, True)
    positive = chosen & candidate
    # An anchor claimed by several ground truths keeps the one it overlaps most.
    multi = positive.sum(1, keepdim=True) > 1
    best = F.one_hot(iou.argmax(1), m).permute(0, 2, 1).bool()
    positive = torch.where(multi, best & candidate, positive)
    foreground = positive.any(1)
    gt_index = positive.float().argmax(1)  # [B, A]
    batch = torch.arange(b, device=scores.device)[:, None]
    target_boxes = gt_boxes[batch, gt_index]
    target_labels = gt_labels.long()[batch, gt_index].clamp(0, nc - 1)
    target_scores = F.one_hot(target_labels, nc).to(scores.dtype) * foreground[..., None]
    align = align * positive
    norm = align / (align.amax(-1, keepdim=True) + eps) * (iou * positive).amax(-1, keepdim=True)
    target_scores = target_scores * norm.amax(1)[..., None]
    return target_boxes, target_scores, foreground


class AnchorFreeLoss(nn.Module):
    """Callable ``(raws, targets) → (total, (box, dfl, cls))`` for SpikeYOLO's head.

    Args:
        strides: pixels per cell of each scale (``model.detect.strides``).
        nc: number of classes; ``reg_max``: DFL bins per side (16).
        hyp: gains and assigner settings.
    """

    def __init__(self, strides: Sequence[float], nc: int, reg_max: int = 16, hyp: AnchorFreeHyp | None = None) -> None:
        super().__init__()
        self.strides = [float(s) for s in strides]
        self.nc, self.reg_max = int(nc), int(reg_max)
        self.hyp = hyp or AnchorFreeHyp()
        self.register_buffer("bins", torch.arange(self.reg_max, dtype=torch.float32), persistent=False)

    @classmethod
    def for_model(cls, model: nn.Module, hyp: AnchorFreeHyp | None = None) -> AnchorFreeLoss:
        detect = model.detect  # type: ignore[union-attr]
        return cls(detect.strides, detect.nc, detect.reg_max, hyp)

    def _grid(self, raws: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        pts, sts = [], []
        for raw, s in zip(raws, self.strides):
            ny, nx = raw.shape[2:4]
            ys, xs = torch.meshgrid(
                torch.arange(ny, device=raw.device, dtype=raw.dtype) + 0.5,
                torch.arange(nx, device=raw.device, dtype=raw.dtype) + 0.5,
                indexing="ij",
            )
            pts.append(torch.stack((xs.reshape(-1), ys.reshape(-1)), -1))
            sts.append(torch.full((ny * nx, 1), s, device=raw.device, dtype=raw.dtype))
        return torch.cat(pts), torch.cat(sts)

    def forward(
        self,
        raws: Sequence[torch.Tensor],
        targets: torch.Tensor,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[float, float, float]]:
        """``raws``: per scale ``[B, 4·reg_max + nc, ny, nx]``; ``targets``: ``[N, 6]`` (b, cls, cx, cy, w, h) pixels.

        ``reduce`` (sum over ranks) makes this one rank's share of the global batch's loss: the
        normaliser (the sum of target scores) and the batch size are global.
        """
        device = raws[0].device
        b = raws[0].shape[0]
        flat = torch.cat([r.reshape(b, r.shape[1], -1) for r in raws], 2).permute(0, 2, 1)  # [B, A, no]
        box_logits, cls_logits = flat[..., : 4 * self.reg_max], flat[..., 4 * self.reg_max :]
        points, stride = self._grid(raws)  # grid units, [A, 2] and [A, 1]
        a = points.shape[0]
        dist_prob = box_logits.reshape(b, a, 4, self.reg_max).softmax(-1)
        dist = dist_prob @ self.bins.to(flat.dtype)  # [B, A, 4] grid units
        pred = torch.cat((points - dist[..., :2], points + dist[..., 2:]), -1)  # corners, grid units

        targets = targets.to(device)
        counts = torch.bincount(targets[:, 0].long(), minlength=b) if len(targets) else torch.zeros(b, dtype=torch.long)
        m = int(counts.max()) if len(targets) else 0
        gt_boxes = torch.zeros(b, m, 4, device=device, dtype=flat.dtype)
        gt_labels = torch.zeros(b, m, device=device, dtype=torch.long)
        gt_mask = torch.zeros(b, m, device=device, dtype=torch.bool)
        for i in range(b):
            rows = targets[targets[:, 0].long() == i]
            n = len(rows)
            if n:
                xywh = rows[:, 2:6].to(flat.dtype)
                gt_boxes[i, :n] = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), -1)
                gt_labels[i, :n] = rows[:, 1].long()
                gt_mask[i, :n] = True
        t_boxes, t_scores, fg = assign_task_aligned(
            cls_logits.detach().sigmoid(),
            pred.detach() * stride,
            points * stride,
            gt_labels,
            gt_boxes,
            gt_mask,
            self.hyp,
        )
        score_sum = t_scores.sum()
        batch = torch.tensor(float(b), device=device)
        if reduce is not None:
            score_sum, batch = reduce(torch.stack((score_sum.double(), batch.double()))).to(flat.dtype)
        norm = score_sum.clamp(min=1)
        lcls = F.binary_cross_entropy_with_logits(cls_logits, t_scores, reduction="sum") / norm
        lbox = torch.zeros((), device=device)
        ldfl = torch.zeros((), device=device)
        if fg.any():
            weight = t_scores.sum(-1)[fg]
            t_grid = t_boxes / stride  # corners, grid units
            ciou = bbox_ciou(_xyxy_to_xywh(pred[fg]), _xyxy_to_xywh(t_grid[fg]))
            lbox = ((1.0 - ciou) * weight).sum() / norm
            pts = points[None].expand(b, a, 2)[fg]
            ltrb = torch.cat((pts - t_grid[fg][:, :2], t_grid[fg][:, 2:] - pts), -1).clamp(0, self.reg_max - 1 - 0.01)
            ldfl = (self._dfl(box_logits[fg].reshape(-1, 4, self.reg_max), ltrb) * weight).sum() / norm
        lbox, ldfl, lcls = lbox * self.hyp.box, ldfl * self.hyp.dfl, lcls * self.hyp.cls
        total = (lbox + ldfl + lcls) * batch
        return total, (float(lbox), float(ldfl), float(lcls))

    @staticmethod
    def _dfl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per positive: mean over the 4 sides of the two-bin cross-entropy around each target."""
        left = target.long()
        w_right = target - left
        ce_l = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), left.reshape(-1), reduction="none")
        ce_r = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), (left + 1).reshape(-1), reduction="none")
        loss = ce_l.view(left.shape) * (1 - w_right) + ce_r.view(left.shape) * w_right
        return loss.mean(-1)
