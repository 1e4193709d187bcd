"""The loss pieces: CIoU, YOLOv5 target assignment, gain scaling."""

import pytest
import torch

from emsdeploy.models.training import LossHyp, YoloLoss, bbox_ciou
from emsdeploy.models.training.assign import assign_targets


def test_ciou_is_one_for_equal_boxes_and_negative_when_far_apart():
    a = torch.tensor([[5.0, 5.0, 4.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[5.0, 5.0, 4.0, 2.0], [10.0, 10.0, 1.0, 3.0]])
    ciou = bbox_ciou(a, b)
    assert ciou[0] == pytest.approx(1.0, abs=1e-5) and ciou[1] < 0


def test_a_box_is_learned_in_its_cell_and_the_two_nearest_neighbours():
    anchors = torch.tensor([[1.0, 1.0], [4.0, 4.0], [1.0, 3.0]])  # grid units
    # Centre (20, 40) px at stride 16 → grid (1.25, 2.5): cell (1, 2); x is nearer the left
    # neighbour, y (exactly 0.5) goes to the lower one. Size 16×16 px = 1×1 cell.
    targets = torch.tensor([[0.0, 2.0, 20.0, 40.0, 16.0, 16.0]])
    asg = assign_targets(targets, anchors, (8, 8), 16.0, anchor_t=4.0)
    # Anchors 0 (ratio 1) and 2 (ratio 3) match; anchor 1 (ratio 4) does not.
    assert sorted(set(asg.a.tolist())) == [0, 2]
    cells = {(gi, gj) for gi, gj in zip(asg.gi.tolist(), asg.gj.tolist())}
    assert cells == {(1, 2), (0, 2), (1, 3)}
    assert len(asg.b) == 6 and set(asg.cls.tolist()) == {2}
    own = (asg.gi == 1) & (asg.gj == 2)
    assert torch.allclose(asg.box[own][0], torch.tensor([0.25, 0.5, 1.0, 1.0]))


def test_gains_are_rescaled_like_yolov5_train():
    h = LossHyp().scaled(nl=2, nc=4, img_size=128)
    assert (h.box, h.cls, h.obj) == pytest.approx((0.075, 0.0375, 0.06))


def test_loss_has_gradients_and_is_smaller_for_a_matching_prediction():
    anchors = torch.tensor([[[1.0, 1.0]], [[2.0, 2.0]]])
    loss_fn = YoloLoss(anchors, [16.0, 32.0], nc=2, hyp=LossHyp().scaled(2, 2, 64))
    raws = [torch.zeros(1, 1, 4, 4, 7, requires_grad=True), torch.zeros(1, 1, 2, 2, 7, requires_grad=True)]
    targets = torch.tensor([[0.0, 1.0, 24.0, 24.0, 16.0, 16.0]])
    loss, parts = loss_fn(raws, targets)
    loss.backward()
    assert loss > 0 and all(p > 0 for p in parts) and raws[0].grad.abs().sum() > 0
    better = [r.detach().clone() for r in raws]
    better[0][0, 0, 1, 1, 4] = 5.0  # objectness where the box is
    better[0][0, 0, 1, 1, 6] = 5.0  # and its class
    assert loss_fn(better, targets)[0] < loss
