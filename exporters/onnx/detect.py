"""Host side of the detector in numpy: per-class NMS of decoded boxes.

numpy only, so a deployment needs onnxruntime and numpy, not torch. The boxes come from the one
YOLOv5 decoding of the run contract (:func:`emsdeploy.ir.runtime.decode_readouts`); NMS follows
YOLOv5's ``non_max_suppression`` with one label per box (its default): confidence = objectness ·
best class score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Detections", "nms", "xywh_to_xyxy"]

MAX_WH = 7680.0  # class offset for batched NMS (YOLOv5): boxes of different classes never overlap


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    xy, half = xywh[..., :2], xywh[..., 2:4] / 2
    return np.concatenate((xy - half, xy + half), -1)


@dataclass
class Detections:
    """Kept boxes of one image, best first.

    Attributes:
        boxes: ``[K, 4]`` xyxy in model-input pixels.
        scores: ``[K]`` objectness · class score.
        classes: ``[K]`` class indices.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first (suppress IoU > ``iou``)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(overlap > iou)]
    return np.asarray(keep, dtype=np.int64)


def nms(boxes: np.ndarray, conf: float = 0.25, iou: float = 0.45, max_det: int = 300) -> list[Detections]:
    """Per-class NMS of decoded boxes ``[B, N, nc+5]``; one :class:`Detections` per image."""
    results = []
    for pred in np.asarray(boxes):
        cls_scores = pred[:, 5:] if pred.shape[1] > 5 else np.ones((pred.shape[0], 1), pred.dtype)
        j = cls_scores.argmax(1)
        score = pred[:, 4] * cls_scores[np.arange(len(j)), j]
        ok = (pred[:, 4] > conf) & (score > conf)
        xyxy, score, j = xywh_to_xyxy(pred[ok, :4]), score[ok], j[ok]
        # float64 so that the class offset costs no precision in the IoU
        keep = _greedy_nms(xyxy.astype(np.float64) + j[:, None] * MAX_WH, score, iou)[:max_det]
        results.append(Detections(xyxy[keep], score[keep], j[keep]))
    return results
