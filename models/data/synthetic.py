"""Synthetic static scenes: a few shapes of four classes on a cluttered, noisy background.

Each image draws from its own random stream ``(seed, split, index)``, so any image can be
made alone, in any order, and the same recipe always gives the same bytes.
"""

from __future__ import annotations

import numpy as np
import torch

from .recipe import SPLITS, SynthRecipe
from .sample import DetectionDataset, Sample
from .shapes import SHAPE_CLASSES, Shape, coverage

__all__ = ["SyntheticShapes", "background", "coco_from_layouts", "image_rng", "paint", "sample_layout"]

MAX_IOU = 0.15  # objects may touch and overlap a little, never hide each other
MAX_TRIES = 30


def image_rng(recipe: SynthRecipe, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([recipe.seed, SPLITS.index(split), index])


def _iou(a: tuple, b: tuple) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def sample_layout(rng: np.random.Generator, recipe: SynthRecipe, margin: float = 1.0) -> list[Shape]:
    """Pick 1 to ``max_objects`` shapes that lie inside the image and barely overlap."""
    shapes: list[Shape] = []
    for _ in range(int(rng.integers(1, recipe.max_objects + 1))):
        for _ in range(MAX_TRIES):
            proto = Shape(
                cls=int(rng.integers(len(SHAPE_CLASSES))),
                cx=0.0,
                cy=0.0,
                size=float(rng.uniform(recipe.min_size, recipe.max_size)),
                orient=int(rng.integers(2)),
                aspect=float(rng.uniform(2.5, 4.0)),
            )
            hw, hh = proto.half_extent()
            cx = float(rng.uniform(hw + margin, recipe.size - hw - margin))
            cy = float(rng.uniform(hh + margin, recipe.size - hh - margin))
            shape = proto.moved(cx, cy)
            if all(_iou(shape.box(), s.box()) <= MAX_IOU for s in shapes):
                shapes.append(shape)
                break
    return shapes


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted two-colour gradient with soft blobs and small unlabelled clutter, ``[H, W, 3]`` in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(0.25, 0.6, 3), rng.uniform(0.25, 0.6, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5) + 0.5).clip(0, 1)
    img = c0 + (c1 - c0) * ramp[..., None]
    for _ in range(3):
        bx, by, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
        blob = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * r * r))
        img = img + rng.uniform(-0.12, 0.12, 3) * blob[..., None]
    for _ in range(int(rng.integers(3, 11))):  # specks far smaller than any object
        kind = int(rng.choice([0, 1]))
        x, y = rng.uniform(0, size, 2)  # drawn in this order: the data sets are reproducible
        speck = Shape(kind, x, y, size=float(rng.uniform(2, 5)))
        paint(img, speck, rng.uniform(0, 1, 3))
    for _ in range(int(rng.integers(1, 4))):  # thin line segments
        x0, y0 = rng.uniform(0, size, 2)
        length, theta = rng.uniform(8, 30), rng.uniform(0, np.pi)
        ts = np.linspace(0, 1, int(length * 2))
        xs = np.clip((x0 + ts * length * np.cos(theta)).astype(int), 0, size - 1)
        ys = np.clip((y0 + ts * length * np.sin(theta)).astype(int), 0, size - 1)
        img[ys, xs] = rng.uniform(0, 1, 3)
    return img.astype(np.float32)


def object_colour(rng: np.random.Generator, behind: np.ndarray, min_distance: float = 0.4) -> np.ndarray:
    """A colour that stands out from the local background (RGB distance at least ``min_distance``)."""
    for _ in range(MAX_TRIES):
        colour = rng.uniform(0, 1, 3)
        if np.linalg.norm(colour - behind) >= min_distance:
            return colour
    return 1.0 - behind  # the complement always contrasts


def paint(img: np.ndarray, shape: Shape, colour: np.ndarray) -> None:
    """Alpha-blend the shape onto ``img`` (in place) by its pixel coverage."""
    cov, (rows, cols) = coverage(shape, img.shape[0], img.shape[1])
    if cov.size:
        img[rows, cols] = img[rows, cols] * (1 - cov[..., None]) + colour * cov[..., None]


def render(rng: np.random.Generator, recipe: SynthRecipe, shapes: list[Shape]) -> np.ndarray:
    """The static scene of ``shapes`` as an 8-bit RGB image ``[H, W, 3]``."""
    img = background(rng, recipe.size)
    for shape in shapes:
        x1, y1, x2, y2 = (int(v) for v in shape.box())
        behind = img[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1].reshape(-1, 3).mean(0)
        paint(img, shape, object_colour(rng, behind))
    img += rng.normal(0, rng.uniform(0.01, 0.04), img.shape).astype(np.float32)
    return (img.clip(0, 1) * 255 + 0.5).astype(np.uint8)


def make_scene(recipe: SynthRecipe, split: str, index: int) -> tuple[np.ndarray, list[Shape]]:
    rng = image_rng(recipe, split, index)
    shapes = sample_layout(rng, recipe)
    return render(rng, recipe, shapes), shapes


def coco_from_layouts(layouts: list[list[Shape]], size: int) -> dict:
    """COCO ``instances`` dict for images ``1..n`` of side ``size``, category ids ``1..4``."""
    images: list[dict] = []
    annotations: list[dict] = []
    for i, shapes in enumerate(layouts):
        images.append({"id": i + 1, "file_name": f"{i:06d}.png", "width": size, "height": size})
        for s in shapes:
            x1, y1, x2, y2 = s.box()
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": s.cls + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(SHAPE_CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def shapes_target(shapes: list[Shape]) -> tuple[torch.Tensor, torch.Tensor]:
    boxes = torch.tensor([s.box() for s in shapes], dtype=torch.float32).view(-1, 4)
    labels = torch.tensor([s.cls for s in shapes], dtype=torch.int64)
    return boxes, labels


class SyntheticDataset(DetectionDataset):
    """What the two synthetic datasets share: a recipe, a split, and labels from the layouts
    (the layout of sample i depends only on the recipe seed, the split and i)."""

    def __init__(self, recipe: SynthRecipe, split: str = "train") -> None:
        self.spec = recipe
        self.split = split
        self.n = recipe.count(split)
        self.names = list(SHAPE_CLASSES)
        self.category_ids = list(range(1, len(SHAPE_CLASSES) + 1))
        self.input_size = recipe.size

    def __len__(self) -> int:
        return self.n

    def _check(self, index: int) -> None:
        if not 0 <= index < self.n:
            raise IndexError(index)

    def layout(self, index: int) -> list[Shape]:
        return sample_layout(image_rng(self.spec, self.split, index), self.spec)

    def coco_ground_truth(self) -> dict:
        return coco_from_layouts([self.layout(i) for i in range(self.n)], self.spec.size)

    def label_sizes(self) -> np.ndarray:
        """Width and height of every label, ``[n, 2]`` pixels, from the layouts (nothing rendered)."""
        boxes = [s.box() for i in range(self.n) for s in self.layout(i)]
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        return b[:, 2:] - b[:, :2]

    def recipe(self) -> dict:
        return {**self.spec.to_dict(), "split": self.split}


class SyntheticShapes(SyntheticDataset):
    """Static RGB scenes for the ``direct`` encoding (recipe kind ``"shapes"``)."""

    encoding = "direct"

    def __getitem__(self, index: int) -> Sample:
        self._check(index)
        img, shapes = make_scene(self.spec, self.split, index)
        boxes, labels = shapes_target(shapes)
        x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
        return Sample(x, boxes, labels, index + 1)
