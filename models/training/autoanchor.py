"""Autoanchor: check that a model's anchors fit the training labels, and refit them if not.

The official ``train.py`` calls ``check_anchors`` before training: a label box is *recallable*
when some anchor is within ``anchor_t`` of it in both width and height ratio (the same rule
as the target assignment). If fewer than 98 % of the labels are recallable (the *best possible
recall*, BPR), new anchors come from k-means on the whitened label sizes, refined by a
genetic search on the recall-weighted fit, and replace the old ones when their BPR is higher.

Differences from the official code, on purpose: every random draw comes from one seeded
generator (the official one uses the global numpy state); k-means is ours (Lloyd's iterations
from k-means++ seeds, not ``scipy.cluster.vq.kmeans``), so the anchors found differ in detail,
not in rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.sample import DetectionDataset

__all__ = ["AnchorCheck", "BPR_THRESHOLD", "best_possible_recall", "check_anchors", "kmean_anchors", "label_sizes"]

BPR_THRESHOLD = 0.98  # below this share of recallable labels, anchors are recomputed


@dataclass(frozen=True)
class AnchorCheck:
    """What :func:`check_anchors` found and did (anchors in pixels, ``[nl, na, 2]`` as lists)."""

    bpr: float  # before
    anchors_per_target: float  # anchors within anchor_t of a label, on average
    replaced: bool
    new_bpr: float | None = None
    anchors: list | None = None  # the new anchors, when replaced

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def label_sizes(dataset: DetectionDataset) -> np.ndarray:
    """Width and height of every label box in model-input pixels, ``[n, 2]`` float32.

    Uses :meth:`DetectionDataset.label_sizes` when the dataset has one (no images decoded), else
    reads every sample.
    """
    fast = getattr(dataset, "label_sizes", None)
    if callable(fast):
        return np.asarray(fast(), dtype=np.float32).reshape(-1, 2)
    rows = []
    for i in range(len(dataset)):
        b = dataset[i].boxes.numpy()
        rows.append(b[:, 2:4] - b[:, 0:2])
    return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 2), np.float32)


def _ratio_metric(wh: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``[n, k]``: for each label and anchor, the worse of the width and height ratios (≤ 1)."""
    r = wh[:, None] / anchors[None]
    return torch.min(r, 1 / r).min(2).values


def best_possible_recall(wh: np.ndarray, anchors: np.ndarray, anchor_t: float) -> tuple[float, float]:
    """(BPR, anchors per target) of pixel ``anchors`` ``[k, 2]`` on label sizes ``wh`` ``[n, 2]``."""
    x = _ratio_metric(torch.as_tensor(wh, dtype=torch.float32), torch.as_tensor(anchors, dtype=torch.float32))
    thr = 1 / anchor_t
    bpr = (x.max(1).values > thr).float().mean()
    aat = (x > thr).float().sum(1).mean()
    return float(bpr), float(aat)


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 30) -> np.ndarray:
    """Lloyd's k-means from k-means++ seeds; ``k`` centres of ``points`` ``[n, d]``."""
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = ((points[:, None] - np.array(centres)[None]) ** 2).sum(2).min(1)
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(points), 1 / len(points))
        centres.append(points[rng.choice(len(points), p=p)])
    c = np.array(centres, dtype=np.float64)
    for _ in range(iters):
        assign = ((points[:, None] - c[None]) ** 2).sum(2).argmin(1)
        for j in range(k):
            if (assign == j).any():
                c[j] = points[assign == j].mean(0)
    return c


def kmean_anchors(
    wh: np.ndarray, n: int, anchor_t: float, rng: np.random.Generator, generations: int = 1000
) -> np.ndarray:
    """``n`` anchors (pixels, sorted by area) fitted to label sizes ``wh``.

    k-means on the sizes divided by their standard deviation, then ``generations`` rounds of
    mutation (90 % of the values, each by a factor ``1 + 0.1·N(0,1)·U``, clipped to [0.3, 3],
    anchors at least 2 px) keeping a mutant when it raises the fitness: the mean over labels
    of the best ratio metric, counted only where it passes ``1 / anchor_t``.
    """
    thr = 1 / anchor_t
    wh0 = np.asarray(wh, dtype=np.float64)
    pts = wh0[(wh0 >= 2.0).any(1)]  # labels under 2 px in both sides say nothing about anchor shape
    if len(pts) < n:
        raise ValueError(f"{len(pts)} labels of 2 px or more; need at least {n} to fit {n} anchors")
    sigma = pts.std(0)
    sigma[sigma == 0] = 1.0
    k = _kmeans(pts / sigma, n, rng) * sigma
    t = torch.as_tensor(pts, dtype=torch.float32)

    def fitness(anchors: np.ndarray) -> float:
        best = _ratio_metric(t, torch.as_tensor(anchors, dtype=torch.float32)).max(1).values
        return float((best * (best > thr).float()).mean())

    f = fitness(k)
    for _ in range(generations):
        v = np.ones(k.shape)
        while (v == 1).all():  # mutate until something changes
            v = ((rng.random(k.shape) < 0.9) * rng.random() * rng.standard_normal(k.shape) * 0.1 + 1).clip(0.3, 3.0)
        kg = (k * v).clip(min=2.0)
        fg = fitness(kg)
        if fg > f:
            f, k = fg, kg
    return k[np.argsort(k.prod(1))]


def check_anchors(
    detect: torch.nn.Module, wh: np.ndarray, anchor_t: float, seed: int = 0, generations: int = 1000
) -> AnchorCheck:
    """Check ``detect``'s anchors against label sizes ``wh`` (pixels) and replace them in place
    when the best possible recall is not above :data:`BPR_THRESHOLD` and k-means does better.

    As in the official check, label sizes are jittered by a random scale in [0.9, 1.1] (the
    scale augmentation) before the recall is measured. New anchors are assigned to scales by
    area, smallest to the finest scale.
    """
    rng = np.random.default_rng(seed)
    wh = np.asarray(wh, dtype=np.float32).reshape(-1, 2)
    if not len(wh):
        raise ValueError("no labels to check anchors against")
    jittered = wh * rng.uniform(0.9, 1.1, size=(len(wh), 1)).astype(np.float32)
    stride = detect.stride.to(detect.anchors.device).view(-1, 1, 1)
    current = (detect.anchors * stride).detach().cpu().view(-1, 2).numpy()
    bpr, aat = best_possible_recall(jittered, current, anchor_t)
    if bpr > BPR_THRESHOLD:
        return AnchorCheck(bpr, aat, False)
    na = current.shape[0]
    new = kmean_anchors(wh, na, anchor_t, rng, generations)
    new_bpr, _ = best_possible_recall(jittered, new, anchor_t)
    if new_bpr <= bpr:
        return AnchorCheck(bpr, aat, False, new_bpr)
    grid = torch.as_tensor(new, dtype=detect.anchors.dtype, device=detect.anchors.device).view_as(detect.anchors)
    with torch.no_grad():
        detect.anchors.copy_(grid / stride)
    return AnchorCheck(bpr, aat, True, new_bpr, new.reshape(detect.anchors.shape).tolist())
