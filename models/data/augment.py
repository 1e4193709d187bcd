"""YOLOv5's training augmentation (the official EMS-YOLO recipe): mosaic, random perspective,
HSV jitter and flips, with the boxes carried through every pixel move.

The rules follow the official ``utils/datasets.py`` (``load_mosaic``) and
``utils/augmentations.py`` (``random_perspective``, ``augment_hsv``, ``letterbox``,
``box_candidates``); the values come from a training recipe (``hyp.scratch.yaml``'s keys).
Two things differ on purpose:

- every random draw comes from one ``numpy`` generator seeded by ``(seed, epoch, index)``, so a
  sample is the same in every run, in any order, with any number of loader workers or ranks
  (the official code draws from the global ``random`` state of each worker);
- boxes are in continuous pixel coordinates (pixel ``(i, j)`` covers ``[j, j+1] × [i, i+1]``)
  and the warp samples each output pixel at its centre, so a box moves exactly as the pixels
  it bounds (cv2's ``warpAffine`` maps pixel centres at integer coordinates; we shift by half a
  pixel around it).

Event data (``frames`` encoding) is never augmented, as in the official Gen1 training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .sample import DetectionDataset, Sample

__all__ = [
    "PAD_GREY",
    "AugmentedDataset",
    "Augmentation",
    "augment_hsv",
    "box_candidates",
    "letterbox_image",
    "mosaic",
    "random_perspective",
]

PAD_GREY = 114  # YOLOv5's fill value for letterbox borders and warped-in areas (uint8)


@dataclass(frozen=True)
class Augmentation:
    """The augmentation hyperparameters of a recipe (``hyp.scratch.yaml`` names and meanings).

    Attributes:
        mosaic: probability of a 4-image mosaic.
        degrees: rotation range, ± degrees.
        translate: translation range, ± fraction of the output side.
        scale: scale gain range, 1 ± scale.
        shear: shear range, ± degrees.
        perspective: perspective range, ± (0 to 0.001).
        hsv_h, hsv_s, hsv_v: hue, saturation and value gain ranges (fractions).
        flipud, fliplr: flip probabilities.
    """

    mosaic: float = 1.0
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    perspective: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    flipud: float = 0.0
    fliplr: float = 0.5

    @property
    def active(self) -> bool:
        return any(getattr(self, f) for f in self.__dataclass_fields__)


# ---- single operations on uint8 HWC images and xyxy boxes ------------------------------------------


def letterbox_image(img: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Fit ``img`` into ``size × size`` keeping its aspect, centred on grey.

    Returns the canvas, the scale and the ``(x, y)`` pad: ``canvas_xy = image_xy · scale + pad``.
    """
    h0, w0 = img.shape[:2]
    r = min(size / h0, size / w0)
    nw, nh = max(1, round(w0 * r)), max(1, round(h0 * r))
    if (nw, nh) != (w0, h0):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if img.ndim == 2:
        img = img[..., None]
    canvas = np.full((size, size, img.shape[2]), PAD_GREY, dtype=np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas[py : py + nh, px : px + nw] = img
    return canvas, r, (float(px), float(py))


def box_candidates(
    before: np.ndarray, after: np.ndarray, wh_thr: float = 2, ar_thr: float = 20, area_thr: float = 0.1
) -> np.ndarray:
    """Which warped boxes to keep: wider and taller than ``wh_thr`` pixels, at least ``area_thr``
    of their (scaled) area left after clipping, aspect ratio below ``ar_thr``. Boxes ``[n, 4]`` xyxy."""
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    eps = 1e-16
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def _warp_matrix(rng: np.random.Generator, aug: Augmentation, in_wh: tuple[int, int], out_wh: tuple[int, int]):
    """The 3×3 matrix of one random perspective (continuous coordinates) and its scale draw.

    Composition, right to left as in the official code: centre the input on the origin, then
    perspective, rotation with scale, shear, and a translation to about the output centre.
    """
    w_in, h_in = in_wh
    w_out, h_out = out_wh
    c = np.eye(3)
    c[0, 2], c[1, 2] = -w_in / 2, -h_in / 2
    p = np.eye(3)
    p[2, 0] = rng.uniform(-aug.perspective, aug.perspective)
    p[2, 1] = rng.uniform(-aug.perspective, aug.perspective)
    angle = math.radians(rng.uniform(-aug.degrees, aug.degrees))
    s = rng.uniform(1 - aug.scale, 1 + aug.scale)
    r = np.eye(3)
    # cv2.getRotationMatrix2D's convention: a positive angle turns the image anticlockwise on screen
    r[:2, :2] = [[s * math.cos(angle), s * math.sin(angle)], [-s * math.sin(angle), s * math.cos(angle)]]
    sh = np.eye(3)
    sh[0, 1] = math.tan(math.radians(rng.uniform(-aug.shear, aug.shear)))
    sh[1, 0] = math.tan(math.radians(rng.uniform(-aug.shear, aug.shear)))
    t = np.eye(3)
    t[0, 2] = rng.uniform(0.5 - aug.translate, 0.5 + aug.translate) * w_out
    t[1, 2] = rng.uniform(0.5 - aug.translate, 0.5 + aug.translate) * h_out
    return t @ sh @ r @ p @ c, s


def _transform_points(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    h = np.concatenate((xy, np.ones((len(xy), 1))), 1) @ m.T
    return h[:, :2] / h[:, 2:3]


def random_perspective(
    rng: np.random.Generator,
    img: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    aug: Augmentation,
    out_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp ``img`` (uint8 HWC) to ``out_size × out_size``; boxes ``[n, 4]`` xyxy follow.

    A box becomes the bounding box of its four warped corners, clipped to the output, and is
    dropped by :func:`box_candidates` if too little of it is left.
    """
    h_in, w_in = img.shape[:2]
    m, s = _warp_matrix(rng, aug, (w_in, h_in), (out_size, out_size))
    # cv2 puts pixel centres at integer coordinates; ours are at +0.5: shift in, warp, shift out.
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    m_cv = np.linalg.inv(half) @ m @ half
    grey = (PAD_GREY,) * 3
    if aug.perspective:
        out = cv2.warpPerspective(img, m_cv, dsize=(out_size, out_size), borderValue=grey)
    else:
        out = cv2.warpAffine(img, m_cv[:2], dsize=(out_size, out_size), borderValue=grey)
    if out.ndim == 2:
        out = out[..., None]
    if not len(boxes):
        return out, boxes.reshape(0, 4), labels
    corners = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(-1, 2)  # (x1,y1) (x2,y2) (x1,y2) (x2,y1)
    xy = _transform_points(m, corners).reshape(-1, 8)
    xs, ys = xy[:, 0::2], xy[:, 1::2]
    new = np.stack((xs.min(1), ys.min(1), xs.max(1), ys.max(1)), 1).clip(0, out_size)
    keep = box_candidates(boxes * s, new)
    return out, new[keep].astype(np.float32), labels[keep]


def augment_hsv(rng: np.random.Generator, img: np.ndarray, aug: Augmentation) -> np.ndarray:
    """Random gains on hue, saturation and value (uint8 RGB HWC), through 256-entry tables as
    the official ``augment_hsv`` (OpenCV's 8-bit hue runs 0-179)."""
    if not (aug.hsv_h or aug.hsv_s or aug.hsv_v) or img.shape[2] != 3:
        return img
    gains = rng.uniform(-1, 1, 3) * [aug.hsv_h, aug.hsv_s, aug.hsv_v] + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float64)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(merged, cv2.COLOR_HSV2RGB)


def mosaic(
    rng: np.random.Generator,
    tiles: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    size: int,
    aug: Augmentation,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four images (uint8 HWC, long side ``size``) around a random centre of a ``2·size`` canvas,
    then one random perspective back to ``size`` (the official ``load_mosaic``).

    The centre lies in the middle half of the canvas; image k fills the quadrant top-left,
    top-right, bottom-left, bottom-right of it, cropped at the canvas edge.
    """
    s = size
    xc, yc = (int(rng.uniform(s / 2, 3 * s / 2)) for _ in range(2))
    canvas = np.full((2 * s, 2 * s, tiles[0][0].shape[2]), PAD_GREY, dtype=np.uint8)
    all_boxes, all_labels = [], []
    for k, (img, boxes, labels) in enumerate(tiles):
        h, w = img.shape[:2]
        if k == 0:
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b = w - (x2a - x1a), h - (y2a - y1a)
        elif k == 1:
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * s), yc
            x1b, y1b = 0, h - (y2a - y1a)
        elif k == 2:
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(2 * s, yc + h)
            x1b, y1b = w - (x2a - x1a), 0
        else:
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * s), min(2 * s, yc + h)
            x1b, y1b = 0, 0
        canvas[y1a:y2a, x1a:x2a] = img[y1b : y1b + (y2a - y1a), x1b : x1b + (x2a - x1a)]
        dx, dy = x1a - x1b, y1a - y1b
        all_boxes.append(boxes + np.array([dx, dy, dx, dy], dtype=np.float32))
        all_labels.append(labels)
    boxes = np.concatenate(all_boxes).clip(0, 2 * s).reshape(-1, 4)
    labels = np.concatenate(all_labels)
    # A tile is cut only at the canvas edge, so clipping to the canvas leaves each box its visible part.
    return random_perspective(rng, canvas, boxes, labels, aug, s)


# ---- the training-set wrapper --------------------------------------------------------------------


def _tile(dataset: DetectionDataset, index: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample ``index`` as a uint8 HWC image with its long side ``size`` and its boxes."""
    img, boxes, labels = dataset.image(index)
    h, w = img.shape[:2]
    r = size / max(h, w)
    if r != 1:
        img = cv2.resize(img, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_LINEAR)
        if img.ndim == 2:
            img = img[..., None]
        boxes = boxes * np.float32(r)
    return img, boxes, labels


class AugmentedDataset(DetectionDataset):
    """A training set seen through :class:`Augmentation`: sample ``i`` of epoch ``e`` is a pure
    function of ``(seed, e, i)``. Call :meth:`set_epoch` before each epoch."""

    def __init__(self, base: DetectionDataset, aug: Augmentation, seed: int = 0) -> None:
        if base.encoding != "direct":
            raise ValueError(
                f"augmentation is for images (direct encoding); {type(base).__name__} gives {base.encoding}"
            )
        self.base, self.aug, self.seed, self.epoch = base, aug, int(seed), 0
        self.names, self.category_ids = base.names, base.category_ids
        self.encoding, self.input_size, self.time_steps = base.encoding, base.input_size, base.time_steps
        self.gen1_mode = base.gen1_mode

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def coco_ground_truth(self) -> dict:
        return self.base.coco_ground_truth()

    def recipe(self) -> dict | None:
        return self.base.recipe()

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        s, aug = self.input_size, self.aug
        if rng.random() < aug.mosaic:
            others = rng.integers(0, len(self.base), 3).tolist()
            order = [index, *others]
            rng.shuffle(order)
            img, boxes, labels = mosaic(rng, [_tile(self.base, k, s) for k in order], s, aug)
        else:
            img, boxes, labels = self.base.image(index)
            img, r, (px, py) = letterbox_image(img, s)
            boxes = boxes * np.float32(r) + np.array([px, py, px, py], dtype=np.float32)
            img, boxes, labels = random_perspective(rng, img, boxes, labels, aug, s)
        img = augment_hsv(rng, img, aug)
        if rng.random() < aug.flipud:
            img = img[::-1]
            boxes = np.stack((boxes[:, 0], s - boxes[:, 3], boxes[:, 2], s - boxes[:, 1]), 1).reshape(-1, 4)
        if rng.random() < aug.fliplr:
            img = img[:, ::-1]
            boxes = np.stack((s - boxes[:, 2], boxes[:, 1], s - boxes[:, 0], boxes[:, 3]), 1).reshape(-1, 4)
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255
        target = torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)).view(-1, 4)
        # image_id -1: a mosaic is no one image of the ground truth (training samples are never scored)
        return Sample(x, target, torch.from_numpy(np.asarray(labels, dtype=np.int64)), -1)
