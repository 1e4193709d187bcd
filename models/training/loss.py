"""The YOLOv5 detection loss (``ComputeLoss``) for EMS-YOLO's raw head outputs.

``loss = B · (box·L_box + obj·L_obj + cls·L_cls)`` with
- ``L_box``: mean ``1 − CIoU`` over the positives of each scale, summed over scales;
- ``L_obj``: BCE of every cell's objectness against the (detached, clamped) CIoU of its
  positive, 0 elsewhere, weighted per scale by ``balance`` (finer scales have more cells
  with no object, so their term counts more);
- ``L_cls``: BCE of the class logits of the positives against one-hot labels.

Two rules are options (:class:`LossHyp`): ``assign`` picks the positives (:mod:`.assign`), and
``obj_target`` the objectness target of a cell shared by several positives: ``max`` the best
IoU among them (YOLOv5 ``sort_obj_iou=True``), ``last`` the IoU of the last positive in
assignment order (the official ``tobj[b, a, gj, gi] = iou`` index write on CPU, made
deterministic here on every device). ``cls_pw``/``obj_pw`` (BCE positive weights),
``fl_gamma`` (focal loss) and ``label_smoothing`` are YOLOv5's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from .assign import ASSIGN_RULES, Assignment, assign_targets
from .boxes import bbox_ciou

__all__ = ["ASSIGN_RULES", "OBJ_TARGETS", "LossHyp", "YoloLoss", "default_balance"]

OBJ_TARGETS = ("max", "last")


def default_balance(nl: int) -> tuple[float, ...]:
    """YOLOv5's objectness weight per scale (finest first) for ``nl`` scales."""
    return (4.0, 1.0, 0.4) if nl == 3 else (4.0, 1.0, 0.25, 0.06, 0.02)[:nl]


@dataclass(frozen=True)
class LossHyp:
    """Loss gains as written in YOLOv5's ``hyp.scratch`` (for 3 scales, 80 classes, 640 px).

    ``balance`` is per scale in the Detect input order (finest first). The defaults are
    emsdeploy's ``fast`` recipe; :class:`~.recipe.Recipe` builds the official ones.
    """

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    anchor_t: float = 4.0
    balance: tuple[float, ...] = (4.0, 1.0)
    cls_pw: float = 1.0
    obj_pw: float = 1.0
    fl_gamma: float = 0.0
    label_smoothing: float = 0.0
    obj_target: str = "max"
    assign: str = "symmetric"

    def __post_init__(self) -> None:
        if self.obj_target not in OBJ_TARGETS:
            raise ValueError(f"obj_target {self.obj_target!r}; allowed: {', '.join(OBJ_TARGETS)}")
        if self.assign not in ASSIGN_RULES:
            raise ValueError(f"assignment rule {self.assign!r}; allowed: {', '.join(ASSIGN_RULES)}")

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
        hyp: loss gains and rules, already :meth:`LossHyp.scaled`.
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

    def assign(self, targets: torch.Tensor, i: int, grid: tuple[int, int]) -> Assignment:
        """The positives of scale ``i`` under this loss's assignment rule."""
        return assign_targets(targets, self.anchors[i], grid, self.strides[i], self.hyp.anchor_t, self.hyp.assign)

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
            asg = self.assign(targets, i, (raw.shape[2], raw.shape[3]))
            tobj = torch.zeros(raw.shape[:4], device=device, dtype=raw.dtype)
            if len(asg.b):
                p = raw[asg.b, asg.a, asg.gj, asg.gi]
                iou = _ciou(p, asg)
                lbox = lbox + (1.0 - iou).mean()
                self._write_obj(tobj, asg, iou)
                if self.nc > 1:
                    lcls = lcls + self._bce(p[:, 5:], self._cls_target(p, asg), self.hyp.cls_pw, "mean")
            lobj = lobj + self._bce(raw[..., 4], tobj, self.hyp.obj_pw, "mean") * self.hyp.balance[i]
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
        asgs = [self.assign(targets, i, (raw.shape[2], raw.shape[3])) for i, raw in enumerate(raws)]
        local = [len(a.b) for a in asgs] + [raw[..., 4].numel() for raw in raws] + [raws[0].shape[0]]
        counts = reduce(torch.tensor(local, dtype=torch.float64, device=device)).tolist()
        nl = len(raws)
        positives, cells, batch = counts[:nl], counts[nl : 2 * nl], counts[-1]
        lbox = torch.zeros((), device=device)
        lobj = torch.zeros((), device=device)
        lcls = torch.zeros((), device=device)
        for i, (raw, asg) in enumerate(zip(raws, asgs)):
            tobj = torch.zeros(raw.shape[:4], device=device, dtype=raw.dtype)
            if len(asg.b):
                p = raw[asg.b, asg.a, asg.gj, asg.gi]
                iou = _ciou(p, asg)
                lbox = lbox + (1.0 - iou).sum() / positives[i]
                self._write_obj(tobj, asg, iou)
                if self.nc > 1:
                    bce = self._bce(p[:, 5:], self._cls_target(p, asg), self.hyp.cls_pw, "sum")
                    lcls = lcls + bce / (positives[i] * self.nc)
            bce = self._bce(raw[..., 4], tobj, self.hyp.obj_pw, "sum")
            lobj = lobj + bce / cells[i] * self.hyp.balance[i]
        lbox, lobj, lcls = lbox * self.hyp.box, lobj * self.hyp.obj, lcls * self.hyp.cls
        total = (lbox + lobj + lcls) * batch
        return total, (float(lbox), float(lobj), float(lcls))

    def _write_obj(self, tobj: torch.Tensor, asg: Assignment, iou: torch.Tensor) -> None:
        """Set each positive's cell to its (detached, clamped) IoU; shared cells by ``obj_target``."""
        score = iou.detach().clamp(min=0).to(tobj.dtype)
        _, na, ny, nx = tobj.shape
        flat = ((asg.b * na + asg.a) * ny + asg.gj) * nx + asg.gi
        if self.hyp.obj_target == "max":
            tobj.view(-1).scatter_reduce_(0, flat, score, reduce="amax")
            return
        # "last": the positive latest in assignment order wins its cell, on every device.
        order = torch.arange(len(flat), device=flat.device)
        winner = torch.full((tobj.numel(),), -1, dtype=order.dtype, device=flat.device)
        winner.scatter_reduce_(0, flat, order, reduce="amax")
        won = winner[flat] == order
        tobj.view(-1)[flat[won]] = score[won]

    def _cls_target(self, p: torch.Tensor, asg: Assignment) -> torch.Tensor:
        """One-hot class targets, smoothed to ``(1 − ε/2, ε/2)`` by ``label_smoothing`` ε."""
        eps = self.hyp.label_smoothing
        if eps == 0.0:
            onehot = torch.zeros_like(p[:, 5:])
            onehot[torch.arange(len(p), device=p.device), asg.cls] = 1.0
            return onehot
        target = torch.full_like(p[:, 5:], 0.5 * eps)
        target[torch.arange(len(p), device=p.device), asg.cls] = 1.0 - 0.5 * eps
        return target

    def _bce(self, logits: torch.Tensor, target: torch.Tensor, pos_weight: float, reduction: str) -> torch.Tensor:
        """BCE with logits, with YOLOv5's positive weight and focal modulation (``fl_gamma`` > 0)."""
        gamma = self.hyp.fl_gamma
        if pos_weight == 1.0 and gamma == 0.0 and reduction == "mean":
            return self.bce(logits, target)
        pw = None if pos_weight == 1.0 else torch.tensor([pos_weight], device=logits.device, dtype=logits.dtype)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
        if gamma > 0.0:
            prob = logits.sigmoid()
            p_t = target * prob + (1 - target) * (1 - prob)
            alpha = target * FOCAL_ALPHA + (1 - target) * (1 - FOCAL_ALPHA)
            loss = loss * alpha * (1.0 - p_t) ** gamma
        return loss.mean() if reduction == "mean" else loss.sum()


FOCAL_ALPHA = 0.25  # YOLOv5 FocalLoss's class balance


def _ciou(p: torch.Tensor, asg: Assignment) -> torch.Tensor:
    """CIoU of the decoded predictions ``p`` (raw rows of the positives) with their targets."""
    pxy = p[:, :2].sigmoid() * 2 - 0.5
    pwh = (p[:, 2:4].sigmoid() * 2) ** 2 * asg.anchor
    return bbox_ciou(torch.cat((pxy, pwh), 1), asg.box)
