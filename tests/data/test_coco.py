"""The COCO loader on real-format files, including malformed ones."""

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from emsdeploy.models.data import CocoDetection, DatasetError, open_dataset


def _write(tmp_path, data, images=(("a.png", 40, 20),)):
    for name, w, h in images:
        Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(tmp_path / name)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def _valid():
    return {
        "images": [{"id": 7, "file_name": "a.png", "width": 40, "height": 20}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [4, 2, 10, 8], "area": 80, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [20, 0, 20, 20], "iscrowd": 1},
        ],
        "categories": [{"id": 3, "name": "dog"}, {"id": 1, "name": "cat"}],
    }


def test_loads_resizes_and_maps_categories(tmp_path):
    ds = CocoDetection(_write(tmp_path, _valid()), input_size=80)
    assert ds.names == ["cat", "dog"] and ds.category_ids == [1, 3]
    s = ds[0]
    assert s.x.shape == (3, 80, 80) and s.image_id == 7 and s.scale == (2.0, 4.0)
    assert torch.allclose(s.boxes, torch.tensor([[8.0, 8.0, 28.0, 40.0]]))  # crowd box left out
    assert s.labels.tolist() == [1]
    gt = ds.coco_ground_truth()
    assert len(gt["annotations"]) == 2 and gt["annotations"][1]["area"] == 400  # crowd kept for the evaluator
    assert open_dataset(tmp_path / "instances.json", "val", 80).names == ["cat", "dog"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("categories"), "categories"),
        (lambda d: d["images"][0].pop("width"), "images[0].width"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotations[0].bbox"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), "annotations[0].bbox"),
        (lambda d: d["annotations"][1].update(category_id=9), "annotations[1].category_id"),
        (lambda d: d["annotations"][0].update(image_id=8), "annotations[0].image_id"),
        (lambda d: d["images"].append(dict(d["images"][0])), "images[1].id"),
    ],
)
def test_malformed_json_names_the_file_and_field(tmp_path, edit, field):
    data = _valid()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(DatasetError) as err:
        CocoDetection(path)
    assert str(path) in str(err.value) and f": {field}: " in str(err.value)
    assert err.value.field == field
    assert str(pickle.loads(pickle.dumps(err.value))) == str(err.value)  # e.g. raised in a DataLoader worker


def test_broken_json_and_missing_or_wrong_images(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [')
    with pytest.raises(DatasetError, match="instances.json: json: not valid JSON"):
        CocoDetection(path)
    data = _valid()
    data["images"][0]["file_name"] = "missing.png"
    with pytest.raises(DatasetError, match=r"missing\.png: file_name: image not found"):
        CocoDetection(_write(tmp_path, data))[0]
    data["images"][0].update(file_name="a.png", width=41)
    with pytest.raises(DatasetError, match=r"images\[0\]\.width/height"):
        CocoDetection(_write(tmp_path, data))[0]
