"""COCO images letterboxed (the official recipe): the aspect is kept, the boxes sit on their pixels,
and detections map back to the original image through the scale and the pad."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from emsdeploy.models.data import CocoDetection, open_dataset
from emsdeploy.models.data.augment import PAD_GREY
from emsdeploy.models.training.evaluate import predict

BOX = [10, 6, 24, 12]  # x, y, w, h in the 80x40 original


def _coco(tmp_path):
    img = np.full((40, 80, 3), 30, np.uint8)
    x, y, w, h = BOX
    img[y : y + h, x : x + w] = (250, 250, 250)
    Image.fromarray(img).save(tmp_path / "a.png")
    data = {
        "images": [{"id": 7, "file_name": "a.png", "width": 80, "height": 40}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": BOX, "iscrowd": 0}],
        "categories": [{"id": 3, "name": "thing"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(data))
    return tmp_path / "instances.json"


def test_letterbox_keeps_the_aspect_and_the_box_on_its_pixels(tmp_path):
    ds = open_dataset(_coco(tmp_path), "train", 64, letterbox=True)
    s = ds[0]
    assert s.scale == (0.8, 0.8) and s.pad == (0.0, 16.0)
    img = (s.x.permute(1, 2, 0).numpy() * 255).round()
    assert (img[:16] == PAD_GREY).all() and (img[48:] == PAD_GREY).all()  # grey above and below
    x1, y1, x2, y2 = s.boxes[0].tolist()
    assert (x1, y1, x2, y2) == pytest.approx((8.0, 20.8, 27.2, 30.4))
    bright = np.argwhere(img[..., 0] > 200)
    assert bright[:, 1].min() >= x1 - 1 and bright[:, 1].max() + 1 <= x2 + 1
    assert bright[:, 0].min() >= y1 - 1 and bright[:, 0].max() + 1 <= y2 + 1
    np.testing.assert_allclose(ds.label_sizes(), [[24 * 0.8, 12 * 0.8]], rtol=1e-6)
    raw, boxes, labels = ds.image(0)  # for augmentation: long side 64, no padding
    assert raw.shape == (32, 64, 3) and labels.tolist() == [0]
    np.testing.assert_allclose(boxes, [[8.0, 4.8, 27.2, 14.4]], rtol=1e-6)
    stretched = CocoDetection(tmp_path / "instances.json", input_size=64)[0]
    assert stretched.scale == (0.8, 1.6) and stretched.pad == (0.0, 0.0)


class _Decoder(torch.nn.Module):
    def __init__(self, box):
        super().__init__()
        self.box = torch.tensor(box, dtype=torch.float32)

    def decode(self, x):
        cx, cy = (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        row = torch.tensor([cx, cy, w, h, 0.9, 1.0])
        return row.expand(x.shape[0], 1, 6)


class _Oracle(torch.nn.Module):
    """A 'model' whose decoded output is one given box (input pixels): tests the mapping only."""

    def __init__(self, box):
        super().__init__()
        self.detect = _Decoder(box)

    def forward(self, x):
        return x


def test_detections_map_back_through_scale_and_pad(tmp_path):
    ds = CocoDetection(_coco(tmp_path), input_size=64, letterbox=True)
    (result,) = predict(_Oracle(ds[0].boxes[0].tolist()), ds, batch_size=1, device="cpu")
    assert result["image_id"] == 7 and result["category_id"] == 3
    assert result["bbox"] == pytest.approx(BOX, abs=1e-4)
