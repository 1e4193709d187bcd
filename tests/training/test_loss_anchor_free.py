"""The anchor-free (YOLOv8) loss for SpikeYOLO: assignment, gradients that fit boxes, DDP shares,
and the trainer's dispatch on the head."""

from __future__ import annotations

import torch

from emsdeploy.models.data import SyntheticShapes, SynthRecipe
from emsdeploy.models.spikeyolo import SpikeYOLO, decode_dfl, spikeyolo_config
from emsdeploy.models.training import TrainConfig, train
from emsdeploy.models.training.loss_anchor_free import AnchorFreeHyp, AnchorFreeLoss, assign_task_aligned

STRIDES = [8.0, 16.0, 32.0]


def _grid_points(size: int) -> torch.Tensor:
    pts = []
    for s in STRIDES:
        n = int(size // s)
        ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
        pts.append(torch.stack((xs.reshape(-1), ys.reshape(-1)), -1) * s)
    return torch.cat(pts)


def test_assignment_takes_the_best_aligned_points_inside_each_box():
    points = _grid_points(64)  # 64 + 16 + 4 anchors
    a = len(points)
    gt = torch.tensor([[[4.0, 4.0, 28.0, 28.0]]])  # covers 9 stride-8 points, 1 stride-16 point
    boxes = torch.cat((points - 10, points + 10), -1)[None]
    scores = torch.full((1, a, 2), 0.5)
    boxes_t, scores_t, fg = assign_task_aligned(
        scores, boxes, points, torch.tensor([[1]]), gt, torch.tensor([[True]]), AnchorFreeHyp(topk=4)
    )
    inside = ((points > 4) & (points < 28)).all(-1)
    assert int(fg.sum()) == 4 and bool((fg[0] <= inside).all())
    assert torch.equal(boxes_t[0, fg[0]], gt[0].expand(4, 4))
    assert float(scores_t[..., 0].abs().sum()) == 0 and bool((scores_t[0, fg[0], 1] > 0).all())
    best_iou = 400 / (576 + 400 - 400)  # a 20×20 box inside the 24×24 ground truth
    assert abs(float(scores_t[..., 1].max()) - best_iou) < 1e-5


def test_a_point_in_two_boxes_goes_to_the_one_it_overlaps_most():
    points = torch.tensor([[16.0, 16.0]])
    boxes = torch.tensor([[[6.0, 6.0, 26.0, 26.0]]])
    gts = torch.tensor([[[0.0, 0.0, 40.0, 40.0], [5.0, 5.0, 27.0, 27.0]]])
    boxes_t, _, fg = assign_task_aligned(
        torch.full((1, 1, 3), 0.5),
        boxes,
        points,
        torch.tensor([[0, 2]]),
        gts,
        torch.tensor([[True, True]]),
        AnchorFreeHyp(),
    )
    assert bool(fg.all()) and torch.equal(boxes_t[0, 0], gts[0, 1])


def _raws(batch: int, nc: int, size: int = 64) -> list[torch.Tensor]:
    return [torch.zeros(batch, 64 + nc, int(size // s), int(size // s), requires_grad=True) for s in STRIDES]


def test_the_loss_fits_raw_outputs_to_the_targets():
    """Gradient descent on the raw head outputs alone: the decoded best box lands on the target."""
    torch.manual_seed(0)
    raws = _raws(1, 3)
    targets = torch.tensor([[0, 2, 30.0, 26.0, 20.0, 28.0]])  # b, cls, cx, cy, w, h
    loss_fn = AnchorFreeLoss(STRIDES, 3)
    opt = torch.optim.Adam(raws, lr=0.1)
    first = None
    for _ in range(90):
        loss, _ = loss_fn(raws, targets)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.2 * first
    pred = decode_dfl([r.detach() for r in raws], STRIDES)[0]  # [4 + nc, A]
    best = int(pred[6].argmax())
    assert float(pred[6, best]) > 0.5 and float(pred[4:6, best].max()) < 0.1
    torch.testing.assert_close(pred[:4, best], targets[0, 2:], rtol=0, atol=0.5)


def test_shares_of_a_duplicated_batch_add_up_to_its_loss():
    torch.manual_seed(1)
    raws = [r.detach().normal_() for r in _raws(2, 3)]
    targets = torch.tensor([[0, 1, 20.0, 20.0, 16.0, 16.0], [1, 0, 40.0, 30.0, 24.0, 12.0]])
    twice = [torch.cat((r, r)) for r in raws]
    targets2 = torch.cat((targets, targets + torch.tensor([2.0, 0, 0, 0, 0, 0])))
    loss_fn = AnchorFreeLoss(STRIDES, 3)
    whole, _ = loss_fn(twice, targets2)
    share, _ = loss_fn(raws, targets, reduce=lambda t: 2 * t)  # the other rank holds the same half
    torch.testing.assert_close(whole, 2 * share)


def test_the_trainer_trains_spikeyolo_with_the_anchor_free_loss():
    cfg = spikeyolo_config("n")
    cfg["scales"]["n"] = [0.33, 0.0625, 1024]
    model = SpikeYOLO({**cfg, "nc": 2})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = []
    data = SyntheticShapes(SynthRecipe(size=32, train=4, val=1, max_objects=1, min_size=10, max_size=20), "train")
    result = train(model, data, TrainConfig(epochs=2, batch_size=4, lr=0.01, seed=0), on_step=steps.append)
    assert result.steps == 2 and not model.training
    assert all(torch.isfinite(torch.tensor([s.loss, s.box, s.obj, s.cls])).all() for s in steps)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert "model.1.encode_conv.weight" in changed and "model.26.cv3.0.2.conv.bias" in changed
    assert "model.26.dfl.conv.weight" not in changed
