"""The YOLOv5 detection loss (``ComputeLoss``) for EMS-YOLO's raw head outputs.

``loss = B · (box·L_box + obj·L_obj + cls·L_cls)`` with
- ``L_box``: mean ``1 − CIoU`` over the positives of each scale, summed over scales;
- ``L_obj``: BCE of every cell's objectness against the (detached, clamped) CIoU of its
  positive, 0 elsewhere, weighted per scale by ``balance`` (finer scales have more cells
  with no object, so their term counts more);
- ``L_cls``: BCE of the class logits of the positives against one-hot labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from .assign import assign_targets
from .boxes import bbox_ciou

__all__ = ["LossHyp", "YoloLoss"]


@dataclass(frozen=True)
class LossHyp:
    """Loss gains as written in YOLOv5's ``hyp.scratch`` (for 3 scales, 80 classes, 640 px).

    ``balance`` is per scale in the Detect input order (finest first).
    """

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    anchor_t: float = 4.0
    balance: tuple[float, ...] = (4.0, 1.0)

    def scaled(self, nl: int, nc: int, img_size: int) -> LossHyp:
        """Rescale the gains to this model and data, as YOLOv5's ``train.py`` does.

        Every term is summed over scales, so all three gains scale with ``3 / nl``; the class
        term is a mean over classes (× ``nc / 80``); the objectness term is a mean over cells,
        whose number grows with the image area (× ``(img_size / 640)²``).
        """
        k = 3 / nl
        return replace(self, box=self.box * k, cls=self.cls * nc / 80 * k, obj=self.obj * (img_size / 640) ** 2 * k)


class YoloLoss(nn.Module):
    """Callable ``(raws, targets) → (total, (box, obj, cls))``.

    Args:
        anchors: ``[nl, na, 2]`` anchors in grid units (``model.detect.anchors``).
        strides: pixels per cell of each scale (``model.detect.stride``).
        nc: number of classes.
        hyp: loss gains, already :meth:`LossHyp.scaled`.
    """

    def __init__(self, anchors: torch.Tensor, strides: Sequence[float], nc: int, hyp: LossHyp) -> None:
        super().__init__()
        if len(hyp.balance) < len(strides):
            raise ValueError(f"balance has {len(hyp.balance)} entries for {len(strides)} scales")
        self.register_buffer("anchors", anchors.detach().clone())
        self.strides = [float(s) for s in strides]
        self.nc = int(nc)
        self.hyp = hyp
        self.bce = nn.BCEWithLogitsLoss()

    def forward(
        self,
        raws: Sequence[torch.Tensor],
        targets: torch.Tensor,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[float, float, float]]:
        """``raws``: per scale ``[B, na, ny, nx, nc+5]``; ``targets``: ``[N, 6]`` (b, cls, cx, cy, w, h) pixels.

        ``reduce`` (sum over ranks) makes this one rank's share of the loss of the global
        batch: the means divide by global counts, so the shares add up to the whole loss.
        """
        if reduce is not None:
            return self._share(raws, targets, reduce)
        device = raws[0].device
        lbox = torch.zeros((), device=device)
        lobj = torch.zeros((), device=device)
        lcls = torch.zeros((), device=device)
        targets = targets.to(device)
        for i, raw in enumerate(raws):
            ny, nx = raw.shape[2:4]
            asg = assign_targets(targets, self.anchors[i], (ny, nx), self.strides[i], self.hyp.anchor_t)
            tobj = torch.zeros(raw.shape[:4], device=device, dtype=raw.dtype)
            if len(asg.b):
                p = raw[asg.b, asg.a, asg.gj, asg.gi]
                pxy = p[:, :2].sigmoid() * 2 - 0.5
                pwh = (p[:, 2:4].sigmoid() * 2) ** 2 * asg.anchor
                iou = bbox_ciou(torch.cat((pxy, pwh), 1), asg.box)
                lbox = lbox + (1.0 - iou).mean()
                # Where several positives share a cell, the best-fitting one sets its objectness.
                score = iou.detach().clamp(min=0).to(tobj.dtype)
                na = raw.shape[1]
                flat = ((asg.b * na + asg.a) * ny + asg.gj) * nx + asg.gi
                tobj.view(-1).scatter_reduce_(0, flat, score, reduce="amax")
                if self.nc > 1:
                    onehot = torch.zeros_like(p[:, 5:])
                    onehot[torch.arange(len(p), device=device), asg.cls] = 1.0
                    lcls = lcls + self.bce(p[:, 5:], onehot)
            lobj = lobj + self.bce(raw[..., 4], tobj) * self.hyp.balance[i]
        lbox, lobj, lcls = lbox * self.hyp.box, lobj * self.hyp.obj, lcls * self.hyp.cls
        batch = raws[0].shape[0]
        total = (lbox + lobj + lcls) * batch
        return total, (float(lbox), float(lobj), float(lcls))

    def _share(
        self, raws: Sequence[torch.Tensor], targets: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[float, float, float]]:
        """As :meth:`forward`, with every mean a local sum over a global count (see ``reduce``)."""
        device = raws[0].device
        targets = targets.to(device)
        asgs = [
            assign_targets(targets, self.anchors[i], (raw.shape[2], raw.shape[3]), self.strides[i], self.hyp.anchor_t)
            for i, raw in enumerate(raws)
        ]
        local = [len(a.b) for a in asgs] + [raw[..., 4].numel() for raw in raws] + [raws[0].shape[0]]
        counts = reduce(torch.tensor(local, dtype=torch.float64, device=device)).tolist()
        nl = len(raws)
        positives, cells, batch = counts[:nl], counts[nl : 2 * nl], counts[-1]
        lbox = torch.zeros((), device=device)
        lobj = torch.zeros((), device=device)
        lcls = torch.zeros((), device=device)
        for i, (raw, asg) in enumerate(zip(raws, asgs)):
            ny, nx = raw.shape[2:4]
            tobj = torch.zeros(raw.shape[:4], device=device, dtype=raw.dtype)
            if len(asg.b):
                p = raw[asg.b, asg.a, asg.gj, asg.gi]
                pxy = p[:, :2].sigmoid() * 2 - 0.5
                pwh = (p[:, 2:4].sigmoid() * 2) ** 2 * asg.anchor
                iou = bbox_ciou(torch.cat((pxy, pwh), 1), asg.box)
                lbox = lbox + (1.0 - iou).sum() / positives[i]
                score = iou.detach().clamp(min=0).to(tobj.dtype)
                na = raw.shape[1]
                flat = ((asg.b * na + asg.a) * ny + asg.gj) * nx + asg.gi
                tobj.view(-1).scatter_reduce_(0, flat, score, reduce="amax")
                if self.nc > 1:
                    onehot = torch.zeros_like(p[:, 5:])
                    onehot[torch.arange(len(p), device=device), asg.cls] = 1.0
                    bce = nn.functional.binary_cross_entropy_with_logits(p[:, 5:], onehot, reduction="sum")
                    lcls = lcls + bce / (positives[i] * self.nc)
            bce = nn.functional.binary_cross_entropy_with_logits(raw[..., 4], tobj, reduction="sum")
            lobj = lobj + bce / cells[i] * self.hyp.balance[i]
        lbox, lobj, lcls = lbox * self.hyp.box, lobj * self.hyp.obj, lcls * self.hyp.cls
        total = (lbox + lobj + lcls) * batch
        return total, (float(lbox), float(lobj), float(lcls))
