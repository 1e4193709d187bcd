"""Training reduces the loss, is reproducible, and the evaluator scores with pycocotools."""

import pytest
import torch

from emsdeploy.models import LIF, build_model
from emsdeploy.models.data import SyntheticShapes, SynthRecipe
from emsdeploy.models.training import TrainConfig, coco_map, evaluate, firing_rates, non_max_suppression, train
from emsdeploy.models.training.recipe import FAST

TINY = SynthRecipe(size=64, train=8, val=4, max_objects=2, min_size=16, max_size=30)


def _model():
    return build_model("emsyolo-tiny", time_steps=2)


def test_a_few_steps_reduce_the_loss():
    losses = []
    train(
        _model(),
        SyntheticShapes(TINY, "train"),
        TrainConfig(epochs=10, batch_size=8, recipe=FAST.with_values(lr0=0.02, warmup_epochs=1), seed=0),
        on_step=lambda s: losses.append(s.loss),
    )
    assert len(losses) == 10
    assert sum(losses[-3:]) / 3 < 0.85 * sum(losses[:3]) / 3


def test_same_seed_same_weights():
    data = SyntheticShapes(TINY, "train")
    cfg = TrainConfig(epochs=1, batch_size=4, seed=3)
    a, b = _model(), _model()
    b.load_state_dict(a.state_dict())
    train(a, data, cfg)
    train(b, data, cfg)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_coco_map_of_the_ground_truth_itself_is_one():
    gt = SyntheticShapes(TINY, "val").coco_ground_truth()
    results = [{**{k: a[k] for k in ("image_id", "category_id", "bbox")}, "score": 1.0} for a in gt["annotations"]]
    m = coco_map(gt, results)
    assert m["map50"] == pytest.approx(1.0) and m["map50_95"] == pytest.approx(1.0)
    shifted = [{**r, "bbox": [r["bbox"][0] + r["bbox"][2] / 2, *r["bbox"][1:]]} for r in results]
    assert coco_map(gt, shifted)["map50"] < 0.5  # boxes shifted by half a width overlap at IoU 1/3
    assert coco_map(gt, [])["map50"] == 0.0


def test_evaluate_and_firing_rates_on_an_untrained_model():
    model, data = _model(), SyntheticShapes(TINY, "val")
    m = evaluate(model, data, batch_size=4)
    assert 0 <= m["map50_95"] <= m["map50"] <= 1 and m["images"] == 4 and m["detections"] > 0
    rates = firing_rates(model, torch.stack([data[i].x for i in range(2)]))
    lifs = [n for n, mod in model.named_modules() if isinstance(mod, LIF)]
    assert list(rates) == lifs and all(0 <= r <= 1 for r in rates.values())


def test_nms_keeps_the_best_box_per_class():
    # xywh, objectness, two class probabilities
    pred = torch.tensor(
        [
            [
                [10, 10, 10, 10, 0.9, 0.9, 0.1],
                [11, 10, 10, 10, 0.8, 0.9, 0.1],  # same class, IoU 0.82: suppressed
                [11, 10, 10, 10, 0.8, 0.1, 0.9],  # other class: kept
                [40, 40, 10, 10, 0.0005, 1.0, 0.0],  # below the threshold
            ]
        ]
    )
    (det,) = non_max_suppression(pred, conf_thres=0.001, iou_thres=0.6)
    assert det.shape == (2, 6)
    assert det[:, 5].tolist() == [0.0, 1.0] and det[0, :4].tolist() == [5, 5, 15, 15]
    assert det[0, 4] == pytest.approx(0.81)
