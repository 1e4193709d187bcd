"""One detection sample, the dataset interface every loader implements, and batching.

Boxes travel as ``xyxy`` in input pixels with contiguous class indices; ``scale`` maps them
back to the original image, where the COCO ground truth of the dataset lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["DetectionDataset", "Sample", "collate"]


@dataclass
class Sample:
    """One input with its labels.

    Attributes:
        x: ``[C, H, W]`` in [0, 1] (``direct``) or ``[T, C, H, W]`` event frames (``frames``).
        boxes: ``[n, 4]`` float ``x1, y1, x2, y2`` in input pixels.
        labels: ``[n]`` int64 contiguous class indices (``0 .. nc-1``).
        image_id: the COCO ``image_id`` of this sample in :meth:`DetectionDataset.coco_ground_truth`.
        scale: input pixels per original pixel, ``(sx, sy)``.
        pad: where the original image starts in the input, ``(x, y)`` pixels (letterbox);
            ``input_xy = original_xy · scale + pad``.
    """

    x: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    image_id: int
    scale: tuple[float, float] = (1.0, 1.0)
    pad: tuple[float, float] = (0.0, 0.0)


class DetectionDataset(Dataset):
    """What training and evaluation need from a dataset, beyond ``__len__``/``__getitem__``.

    Attributes:
        names: class names, by contiguous index.
        category_ids: COCO ``category_id`` of each contiguous index.
        encoding: ``"direct"`` or ``"frames"`` (the model input it produces).
        input_size: side of the square model input, pixels.
        time_steps: frames per sample for ``frames``; ``None`` for ``direct``.
        gen1_mode: the Gen1 input mode (``official`` or ``per-bin``) for Gen1 data, else ``None``.
    """

    names: list[str]
    category_ids: list[int]
    encoding: str
    input_size: int
    time_steps: int | None = None
    gen1_mode: str | None = None

    def __getitem__(self, index: int) -> Sample:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def coco_ground_truth(self) -> dict:
        """The labels as a COCO ``instances`` dict, in original image pixels."""
        raise NotImplementedError

    def image(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``index`` for augmentation: a uint8 ``[H, W, C]`` image, its boxes ``[n, 4]``
        xyxy (float32, pixels of that image) and labels ``[n]``.

        By default the model input itself (exact for inputs made from 8-bit images); a loader
        whose inputs are resized overrides it to keep the aspect ratio (the official loader's
        long side = input size).
        """
        s = self[index]
        img = (s.x.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        return img, s.boxes.numpy().astype(np.float32).reshape(-1, 4), s.labels.numpy().astype(np.int64)

    def recipe(self) -> dict | None:
        """A plain-data description that rebuilds this dataset, if it can be rebuilt (synthetic)."""
        return None


def collate(samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor, list[Sample]]:
    """Stack inputs; targets become one ``[N, 6]`` tensor ``(batch index, class, cx, cy, w, h)`` in input pixels."""
    x = torch.stack([s.x for s in samples])
    rows = []
    for i, s in enumerate(samples):
        b = s.boxes.to(torch.float32)
        wh = b[:, 2:] - b[:, :2]
        rows.append(
            torch.cat(
                (torch.full((len(b), 1), float(i)), s.labels.to(torch.float32).view(-1, 1), b[:, :2] + wh / 2, wh), 1
            )
        )
    targets = torch.cat(rows) if rows else torch.zeros(0, 6)
    return x, targets, list(samples)
