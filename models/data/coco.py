"""COCO-format detection data: a folder of images and an ``instances`` JSON file.

The JSON is checked field by field when it is opened, so a malformed file fails at once
with the file and the JSON path of the bad field, not deep inside training.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from emsdeploy.errors import EmsdeployError
from emsdeploy.fileio import open_image

from .errors import DatasetError
from .sample import DetectionDataset, Sample

__all__ = ["CocoDetection", "read_coco"]


def _require(cond: bool, path: Path, field: str, problem: str) -> None:
    if not cond:
        raise DatasetError(path, field, problem)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_coco(path: str | Path) -> dict:
    """Load and validate a COCO ``instances`` JSON. Raises :class:`DatasetError` naming the bad field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DatasetError(path, "file", f"cannot read ({e.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(path, "json", f"not valid JSON ({e})") from None
    _require(isinstance(data, dict), path, "(top level)", "expected an object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        _require(isinstance(data.get(key), list), path, key, "missing or not a list")

    categories: set[int] = set()
    for k, c in enumerate(data["categories"]):
        where = f"categories[{k}]"
        _require(isinstance(c, dict), path, where, "expected an object")
        _require(_is_int(c.get("id")), path, f"{where}.id", f"expected an integer, got {c.get('id')!r}")
        _require(c["id"] not in categories, path, f"{where}.id", f"duplicate category id {c['id']}")
        _require(isinstance(c.get("name", ""), str), path, f"{where}.name", "expected a string")
        categories.add(c["id"])
    _require(bool(categories), path, "categories", "no categories")

    images: dict[int, dict] = {}
    for k, im in enumerate(data["images"]):
        where = f"images[{k}]"
        _require(isinstance(im, dict), path, where, "expected an object")
        _require(_is_int(im.get("id")), path, f"{where}.id", f"expected an integer, got {im.get('id')!r}")
        _require(im["id"] not in images, path, f"{where}.id", f"duplicate image id {im['id']}")
        _require(isinstance(im.get("file_name"), str), path, f"{where}.file_name", "missing or not a string")
        for dim in ("width", "height"):
            v = im.get(dim)
            _require(_is_int(v) and v > 0, path, f"{where}.{dim}", f"expected a positive integer, got {v!r}")
        images[im["id"]] = im

    for k, a in enumerate(data["annotations"]):
        where = f"annotations[{k}]"
        _require(isinstance(a, dict), path, where, "expected an object")
        _require(a.get("image_id") in images, path, f"{where}.image_id", f"{a.get('image_id')!r} is not an image id")
        _require(
            a.get("category_id") in categories,
            path,
            f"{where}.category_id",
            f"{a.get('category_id')!r} is not a category id (known: {sorted(categories)})",
        )
        box = a.get("bbox")
        _require(
            isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box),
            path,
            f"{where}.bbox",
            f"expected 4 numbers [x, y, width, height], got {box!r}",
        )
        _require(box[2] >= 0 and box[3] >= 0, path, f"{where}.bbox", f"negative width or height in {box}")
        _require(a.get("iscrowd", 0) in (0, 1), path, f"{where}.iscrowd", f"expected 0 or 1, got {a.get('iscrowd')!r}")
        _require(
            _is_int(a.get("id", 0)), path, f"{where}.id", f"expected an integer annotation id, got {a.get('id')!r}"
        )
    return data


class CocoDetection(DetectionDataset):
    """Images listed in a COCO JSON, fitted to a square model input: stretched, or letterboxed
    (aspect kept, centred on YOLOv5's grey, as the official recipe trains and validates).

    Args:
        annotations: the ``instances`` JSON file.
        image_dir: folder that ``file_name`` is relative to (default: the JSON's folder).
        input_size: side of the model input, pixels.
        letterbox: keep the aspect ratio (pad) instead of stretching.

    Crowd boxes are left out of the training targets but kept in the ground truth, where
    pycocotools treats them as "ignore" regions.
    """

    encoding = "direct"

    def __init__(
        self,
        annotations: str | Path,
        image_dir: str | Path | None = None,
        input_size: int = 640,
        letterbox: bool = False,
    ) -> None:
        self.path = Path(annotations)
        self.letterbox = bool(letterbox)
        self.data = read_coco(self.path)
        self.image_dir = Path(image_dir) if image_dir is not None else self.path.parent
        self.input_size = int(input_size)
        cats = sorted(self.data["categories"], key=lambda c: c["id"])
        self.category_ids = [c["id"] for c in cats]
        self.names = [str(c.get("name", c["id"])) for c in cats]
        index = {cid: k for k, cid in enumerate(self.category_ids)}
        self.images = self.data["images"]
        self._image_pos = {im["id"]: k for k, im in enumerate(self.images)}
        self._boxes: list[list[tuple[int, list[float]]]] = [[] for _ in self.images]
        for a in self.data["annotations"]:
            if not a.get("iscrowd", 0):
                self._boxes[self._image_pos[a["image_id"]]].append((index[a["category_id"]], a["bbox"]))

    def __len__(self) -> int:
        return len(self.images)

    def _rgb(self, index: int) -> Image.Image:
        im = self.images[index]
        file = self.image_dir / im["file_name"]
        if not file.is_file():
            raise DatasetError(file, "file_name", f"image not found (listed in {self.path} images[{index}])")
        try:
            with open_image(file) as f:  # the checked reader: pixel count bounded before decoding
                rgb = f.convert("RGB")
        except EmsdeployError as e:
            raise DatasetError(file, "file_name", str(e).removeprefix(f"{file}: ")) from None
        except OSError as e:
            raise DatasetError(file, "file_name", f"not a readable image ({e})") from None
        if rgb.size != (im["width"], im["height"]):
            raise DatasetError(
                self.path,
                f"images[{index}].width/height",
                f"{im['width']}x{im['height']} but {file.name} is {rgb.size[0]}x{rgb.size[1]}",
            )
        return rgb

    def _fit(self, index: int) -> tuple[int, int, float, float]:
        """``(width, height, sx, sy)`` of image ``index`` resized for the model input (before padding)."""
        im, s = self.images[index], self.input_size
        if not self.letterbox:
            return s, s, s / im["width"], s / im["height"]
        r = s / max(im["width"], im["height"])
        w, h = max(1, round(im["width"] * r)), max(1, round(im["height"] * r))
        return w, h, w / im["width"], h / im["height"]

    def _labels(self, index: int, sx: float, sy: float, px: float = 0.0, py: float = 0.0):
        rows = self._boxes[index]
        boxes = torch.tensor(
            [[b[0] * sx + px, b[1] * sy + py, (b[0] + b[2]) * sx + px, (b[1] + b[3]) * sy + py] for _, b in rows],
            dtype=torch.float32,
        ).view(-1, 4)
        labels = torch.tensor([c for c, _ in rows], dtype=torch.int64)
        return boxes, labels

    def __getitem__(self, index: int) -> Sample:
        s = self.input_size
        w, h, sx, sy = self._fit(index)
        pixels = np.asarray(self._rgb(index).resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
        px, py = (s - w) // 2, (s - h) // 2
        if (w, h) != (s, s):
            canvas = np.full((s, s, 3), 114, dtype=np.uint8)  # YOLOv5's letterbox grey
            canvas[py : py + h, px : px + w] = pixels
            pixels = canvas
        x = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255
        boxes, labels = self._labels(index, sx, sy, px, py)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(px, px + w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(py, py + h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return Sample(x, boxes[keep], labels[keep], self.images[index]["id"], (sx, sy), (float(px), float(py)))

    def image(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The image with its long side at the input size, aspect kept (the official loader's
        ``load_image``), for augmentation; boxes in its pixels."""
        im, s = self.images[index], self.input_size
        r = s / max(im["width"], im["height"])
        w, h = max(1, round(im["width"] * r)), max(1, round(im["height"] * r))
        pixels = np.asarray(self._rgb(index).resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
        boxes, labels = self._labels(index, w / im["width"], h / im["height"])
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return pixels.copy(), boxes[keep].numpy(), labels[keep].numpy()

    def label_sizes(self) -> np.ndarray:
        """Width and height of every training label in model-input pixels (no image decoded)."""
        rows = []
        for index in range(len(self.images)):
            _, _, sx, sy = self._fit(index)
            rows += [(b[2] * sx, b[3] * sy) for _, b in self._boxes[index]]
        return np.asarray(rows, dtype=np.float32).reshape(-1, 2)

    def coco_ground_truth(self) -> dict:
        anns = []
        for k, a in enumerate(self.data["annotations"]):
            w, h = a["bbox"][2], a["bbox"][3]
            anns.append({**a, "id": k + 1, "area": a.get("area", w * h), "iscrowd": a.get("iscrowd", 0)})
        return {"images": self.images, "annotations": anns, "categories": self.data["categories"]}
