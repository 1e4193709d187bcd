"""Write a dataset to disk in COCO format (PNG images + ``annotations.json``), e.g. to share
the synthetic data with other tools or to check the COCO loader on it."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from PIL import Image

from emsdeploy.fileio import atomic_write  # usual permissions (umask), cleanup on signals

from .sample import DetectionDataset

__all__ = ["export_coco"]


def _write_png(pixels: np.ndarray, tmp: Path) -> None:
    Image.fromarray(pixels).save(tmp, format="PNG")


def export_coco(dataset: DetectionDataset, out_dir: str | Path, limit: int | None = None) -> Path:
    """Write the images of a ``direct``-encoding dataset (the first ``limit``, or all) and their
    labels; returns the JSON path.

    Images are written at the dataset's input size, so the labels are rescaled to it; for the
    synthetic shapes this is the identity and the export is lossless.
    """
    if dataset.encoding != "direct":
        raise ValueError("export_coco writes images; event-frame datasets have no single image per sample")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gt = dataset.coco_ground_truth()
    by_id = {im["id"]: im for im in gt["images"]}
    images = []
    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    for i in range(count):
        s = dataset[i]
        pixels = (s.x.permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
        name = f"{s.image_id:06d}.png"
        atomic_write(out / name, functools.partial(_write_png, pixels))
        im = by_id[s.image_id]
        images.append({**im, "file_name": name, "width": pixels.shape[1], "height": pixels.shape[0]})
        by_id[s.image_id] = {**im, "scale": s.scale}
    annotations = []
    written = {im["id"] for im in images}
    for a in gt["annotations"]:
        if a["image_id"] not in written:
            continue
        sx, sy = by_id[a["image_id"]].get("scale", (1.0, 1.0))
        x, y, w, h = a["bbox"]
        annotations.append({**a, "bbox": [x * sx, y * sy, w * sx, h * sy], "area": w * sx * h * sy})
    coco = {"images": images, "annotations": annotations, "categories": gt["categories"]}
    path = out / "annotations.json"
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(coco), encoding="utf-8"))  # written last
    return path
