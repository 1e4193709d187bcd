"""mAP of a detector on a dataset, computed by pycocotools against the dataset's COCO labels."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..boxes import dfl_rows
from ..data.sample import DetectionDataset, collate
from .nms import non_max_suppression
from .trainer import pick_device

__all__ = ["coco_map", "evaluate", "predict", "score"]


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: DetectionDataset,
    batch_size: int = 32,
    device: str | None = None,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 100,
) -> list[dict]:
    """Detections as COCO results (``image_id``, ``category_id``, ``bbox`` xywh in original pixels, ``score``)."""
    dev = pick_device(device)
    model.to(dev).eval()
    results = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for x, _, samples in loader:
        raws = model(x.to(dev))
        boxes = model.detect.decode(raws)
        if getattr(model.detect, "reg_max", None):  # SpikeYOLO: [B, 4 + nc, A], no objectness
            boxes = dfl_rows(boxes)
        dets = non_max_suppression(boxes, conf_thres, iou_thres, max_det)
        for det, s in zip(dets, samples):
            det = det.cpu().double()
            (sx, sy), (px, py) = s.scale, s.pad
            for x1, y1, x2, y2, score, cls in det.tolist():
                results.append(
                    {
                        "image_id": s.image_id,
                        "category_id": dataset.category_ids[int(cls)],
                        "bbox": [(x1 - px) / sx, (y1 - py) / sy, (x2 - x1) / sx, (y2 - y1) / sy],
                        "score": score,
                    }
                )
    return results


def coco_map(ground_truth: dict, results: list[dict]) -> dict:
    """``map50``, ``map50_95`` and per-category AP@0.5 from pycocotools' COCOeval (bbox)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    categories = [c["id"] for c in ground_truth["categories"]]
    names = {c["id"]: c.get("name", str(c["id"])) for c in ground_truth["categories"]}
    if not results or not ground_truth["annotations"]:
        return {"map50": 0.0, "map50_95": 0.0, "ap50_per_class": {names[c]: 0.0 for c in categories}}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress; keep stdout clean (--json)
        gt = COCO()
        gt.dataset = {"info": {}, **ground_truth}
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [iou thresholds, recall, category, area, max dets]
    per_class = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[0, :, k, 0, -1]
        per_class[names[cat]] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
    return {
        "map50": float(max(ev.stats[1], 0.0)),
        "map50_95": float(max(ev.stats[0], 0.0)),
        "ap50_per_class": per_class,
    }


def evaluate(model: nn.Module, dataset: DetectionDataset, batch_size: int = 32, device: str | None = None) -> dict:
    """Predict on every sample, then score with :func:`coco_map`; adds image, label and detection counts."""
    return score(dataset, predict(model, dataset, batch_size, device))


def score(dataset: DetectionDataset, results: list[dict]) -> dict:
    """:func:`coco_map` of ``results`` (every sample's detections, in sample order) against the labels."""
    gt = dataset.coco_ground_truth()
    metrics = coco_map(gt, results)
    metrics.update(
        images=len(gt["images"]),
        instances=int(np.sum([not a.get("iscrowd", 0) for a in gt["annotations"]])),
        detections=len(results),
    )
    return metrics
