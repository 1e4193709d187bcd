"""Autoanchor: the best possible recall by the assignment's ratio rule, and anchors refitted
(in the model) when they fit the labels badly."""

import numpy as np
import pytest
import torch

from emsdeploy.models import build_model
from emsdeploy.models.data import SyntheticShapes, SynthRecipe
from emsdeploy.models.training.autoanchor import (
    best_possible_recall,
    check_anchors,
    kmean_anchors,
    label_sizes,
)

DATA = SynthRecipe(size=128, train=60, val=4, max_objects=3, min_size=14, max_size=44)


def test_bpr_counts_labels_within_anchor_t_of_some_anchor():
    wh = np.array([[10, 10], [40, 10], [100, 100], [3, 3]], np.float32)
    anchors = np.array([[10, 10], [30, 30]], np.float32)
    bpr, aat = best_possible_recall(wh, anchors, anchor_t=4.0)
    # 10x10: both anchors (ratio 1 and 1/3); 40x10: 10x10 is 4x too wide (not < 4), 30x30 is 3x too tall -> one;
    # 100x100: 30x30 at 1/3.33 -> one; 3x3: 10x10 at 1/3.33 -> one
    assert bpr == pytest.approx(1.0) and aat == pytest.approx((2 + 1 + 1 + 1) / 4)
    bpr, _ = best_possible_recall(wh, anchors, anchor_t=3.0)
    assert bpr == pytest.approx(1 / 4)  # only 10x10 is within 3x of an anchor in both sides


def test_kmeans_finds_the_clusters_of_label_sizes():
    rng = np.random.default_rng(0)
    centres = np.array([[8, 8], [30, 12], [90, 90]], np.float64)
    wh = np.concatenate([c * rng.uniform(0.9, 1.1, (50, 2)) for c in centres])
    k = kmean_anchors(wh, 3, 4.0, np.random.default_rng(1), generations=100)
    np.testing.assert_allclose(k, centres, rtol=0.15)
    again = kmean_anchors(wh, 3, 4.0, np.random.default_rng(1), generations=100)
    np.testing.assert_array_equal(k, again)  # seeded: the same anchors every run


def test_good_anchors_are_kept():
    model = build_model("emsyolo-tiny", time_steps=1)
    before = model.detect.anchors.clone()
    wh = label_sizes(SyntheticShapes(DATA, "train"))
    assert len(wh) > 60
    check = check_anchors(model.detect, wh, anchor_t=4.0)
    assert check.bpr > 0.98 and not check.replaced
    assert torch.equal(model.detect.anchors, before)


def test_bad_anchors_are_replaced_in_the_model(tmp_path):
    import yaml

    from emsdeploy.models.config import builtin_config_path, load_config

    cfg = load_config(builtin_config_path("emsyolo-tiny"))
    cfg["anchors"] = [[300, 300, 400, 420, 500, 480], [600, 600, 700, 650, 800, 800]]  # far too large
    path = tmp_path / "big-anchors.yaml"
    path.write_text(yaml.safe_dump(cfg))
    model = build_model(str(path), time_steps=1)
    wh = label_sizes(SyntheticShapes(DATA, "train"))
    check = check_anchors(model.detect, wh, anchor_t=4.0, generations=200)
    assert check.bpr < 0.2 and check.replaced and check.new_bpr > 0.98
    pixels = (model.detect.anchors * model.detect.stride.view(-1, 1, 1)).view(-1, 2)
    np.testing.assert_allclose(pixels.numpy(), np.array(check.anchors).reshape(-1, 2), rtol=1e-6)
    assert (pixels.prod(1).diff() >= 0).all()  # smallest anchors on the finest scale
    assert best_possible_recall(wh, pixels.numpy(), 4.0)[0] > 0.98


@pytest.mark.parametrize("kind", ["gen1", "events", "shapes"])
def test_label_sizes_without_decoding_equal_the_samples_boxes(tmp_path, kind):
    from emsdeploy.models.data import Gen1Detection, SyntheticEvents

    if kind == "gen1":
        from tests.data.test_gen1 import BOXES, EVENTS, write_boxes, write_dat

        write_dat(tmp_path / "rec_td.dat", EVENTS)
        write_boxes(tmp_path / "rec_bbox.npy", BOXES)
        ds = Gen1Detection(tmp_path, input_size=64)
    elif kind == "events":
        ds = SyntheticEvents(SynthRecipe(kind="events", size=64, train=3, val=1, min_size=16, max_size=30))
    else:
        ds = SyntheticShapes(SynthRecipe(size=64, train=3, val=1, min_size=16, max_size=30))
    fast = ds.label_sizes()
    boxes = torch.cat([ds[i].boxes for i in range(len(ds))])
    assert len(fast) == len(boxes) > 0
    np.testing.assert_allclose(fast, (boxes[:, 2:] - boxes[:, :2]).numpy(), rtol=1e-5, atol=1e-4)
