"""The synthetic datasets: deterministic, labelled consistently, and exportable to COCO."""

import numpy as np
import pytest
import torch

from emsdeploy.models.data import (
    CocoDetection,
    DatasetError,
    SyntheticEvents,
    SyntheticShapes,
    SynthRecipe,
    export_coco,
    make_events,
    open_dataset,
)

SMALL = SynthRecipe(size=64, train=4, val=3, min_size=12, max_size=30)


def test_same_seed_same_bytes_and_other_seed_differs():
    a, b = SyntheticShapes(SMALL, "train"), SyntheticShapes(SMALL, "train")
    assert torch.equal(a[2].x, b[2].x) and torch.equal(a[2].boxes, b[2].boxes)
    other = SyntheticShapes(SynthRecipe(**{**SMALL.to_dict(), "seed": 1}), "train")
    assert not torch.equal(a[2].x, other[2].x)
    assert not torch.equal(a[0].x, SyntheticShapes(SMALL, "val")[0].x)  # held-out split, own stream


def test_labels_lie_inside_the_image_and_match_the_coco_ground_truth():
    ds = SyntheticShapes(SMALL, "val")
    gt = ds.coco_ground_truth()
    assert [c["name"] for c in gt["categories"]] == ["disc", "square", "triangle", "bar"]
    for i in range(len(ds)):
        s = ds[i]
        assert s.x.shape == (3, 64, 64) and 0 <= s.x.min() and s.x.max() <= 1
        assert 1 <= len(s.boxes) <= SMALL.max_objects
        assert (s.boxes >= 0).all() and (s.boxes <= 64).all()
        anns = [a for a in gt["annotations"] if a["image_id"] == s.image_id]
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32)
        assert torch.allclose(xywh[:, :2], s.boxes[:, :2]) and torch.allclose(
            xywh[:, 2:], s.boxes[:, 2:] - s.boxes[:, :2]
        )
        assert [a["category_id"] - 1 for a in anns] == s.labels.tolist()


def test_shapes_are_painted_where_their_boxes_are():
    s = SyntheticShapes(SMALL, "train")[0]
    x1, y1, x2, y2 = s.boxes[0].round().int().tolist()
    inside = s.x[:, y1:y2, x1:x2]
    assert inside.std() > 0.05  # an object edge against its background, not flat noise


def test_export_to_coco_round_trips_through_the_coco_loader(tmp_path):
    ds = SyntheticShapes(SMALL, "val")
    ann = export_coco(ds, tmp_path / "val")
    back = CocoDetection(ann, input_size=64)
    assert back.names == ds.names and len(back) == len(ds)
    for i in range(len(ds)):
        a, b = ds[i], back[i]
        assert torch.equal(a.x, b.x)
        assert torch.allclose(a.boxes, b.boxes, atol=1e-4) and torch.equal(a.labels, b.labels)
    assert open_dataset(tmp_path, "val", 64).names == ds.names  # folder form: <split>/annotations.json


def test_events_are_time_ordered_dvs_events_near_the_objects():
    r = SynthRecipe(kind="events", size=64, train=2, val=1, min_size=12, max_size=30, time_bins=4)
    events, shapes = make_events(r, "train", 0)
    assert np.all(np.diff(events["t"]) >= 0) and events["t"].min() >= 0 and events["t"].max() < r.window_us
    assert set(np.unique(events["p"])) <= {0, 1} and len(np.unique(events["p"])) == 2
    near = np.zeros((64, 64), bool)
    for s in shapes:
        x1, y1, x2, y2 = s.box()
        m = int(s.size) + 2  # objects travel up to one size over the window
        near[max(int(y1) - m, 0) : int(y2) + m, max(int(x1) - m, 0) : int(x2) + m] = True
    assert near[events["y"], events["x"]].mean() > 0.8  # mostly object edges, a little noise
    sample = SyntheticEvents(r, "train")[0]
    assert sample.x.shape == (4, 3, 64, 64)
    assert set((sample.x * 255).round().unique().tolist()) == {0.0, 127.0, 255.0}
    again, _ = make_events(r, "train", 0)
    assert events.tobytes() == again.tobytes()


def test_recipe_strings_and_their_errors():
    r = SynthRecipe.parse("events:seed=3,train=10")
    assert (r.kind, r.seed, r.train, r.val) == ("events", 3, 10, 500)
    with pytest.raises(DatasetError, match="colour: unknown key"):
        SynthRecipe.parse("shapes:colour=3")
    with pytest.raises(DatasetError, match="seed: expected an integer"):
        SynthRecipe.parse("shapes:seed=x")
    with pytest.raises(DatasetError, match="max_size"):
        SynthRecipe(size=32)
