"""Each piece of the official recipe on its own, and the ``fast`` recipe kept exactly as it was.

The official numbers come from BICLab/EMS-YOLO's ``train.py``/``utils/loss.py`` (the fixture
``train_step_tiny_T4`` checks them together on a real step); here each rule is pinned where it
turns: warmup values at iterations 0, half-way and the end (1000), the accumulation and the
weight-decay scaling, the per-epoch cosine, the EMA update, the grid-line assignment table and
the objectness rules for a shared cell.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from emsdeploy.models import build_model
from emsdeploy.models.data import SyntheticShapes, SynthRecipe
from emsdeploy.models.data.sample import collate
from emsdeploy.models.training.assign import assign_targets
from emsdeploy.models.training.ema import ModelEMA
from emsdeploy.models.training.loss import LossHyp, YoloLoss, _ciou
from emsdeploy.models.training.optim import (
    accumulate_steps,
    cosine_lr,
    make_optimizer,
    make_recipe_optimizer,
    official_param_groups,
    scaled_weight_decay,
)
from emsdeploy.models.training.recipe import FAST, OFFICIAL
from emsdeploy.models.training.schedule import EpochSchedule, make_schedule, one_cycle
from emsdeploy.models.training.step import TrainStep
from emsdeploy.models.training.trainer import seed_everything

TINY = SynthRecipe(size=64, train=8, val=4, max_objects=2, min_size=16, max_size=30)


def _model(time_steps: int = 2) -> nn.Module:
    return build_model("emsyolo-tiny", time_steps=time_steps)


def _schedule(nb: int = 1, epochs: int = 300, batch: int = 4) -> EpochSchedule:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    s = make_schedule(OFFICIAL, opt, batches_per_epoch=nb, epochs=epochs, batch_size=batch)
    assert isinstance(s, EpochSchedule)
    return s


def test_warmup_lasts_three_epochs_or_1000_iterations():
    assert _schedule(nb=1).warmup_iters == 1000
    assert _schedule(nb=500).warmup_iters == 1500


def test_warmup_values_at_iteration_0_half_way_and_1000():
    s = _schedule()
    target = 0.01 * one_cycle(0, 300, 0.1)
    assert [s.values(g, 0, 0) for g in range(3)] == [(0.0, 0.8), (0.0, 0.8), (0.1, 0.8)]
    half = [s.values(g, 500, 0) for g in range(3)]
    assert half[0] == pytest.approx((target / 2, (0.8 + 0.937) / 2), rel=1e-15)
    assert half[2] == pytest.approx(((0.1 + target) / 2, (0.8 + 0.937) / 2), rel=1e-15)
    # At 1000 the warmup reaches the schedule's values (in epoch 3 of 1-batch epochs: lf(3)).
    assert [s.values(g, 1000, 3) for g in range(3)] == [(0.01 * one_cycle(3, 300, 0.1), 0.937)] * 3
    assert s.values(2, 1001, 3) == s.values(0, 1001, 3)
    opt = make_recipe_optimizer(_model(), OFFICIAL, batch_size=4)
    s.apply(opt, 0, 0, 0)
    assert [(g["lr"], g["momentum"]) for g in opt.param_groups] == [(0.0, 0.8), (0.0, 0.8), (0.1, 0.8)]


def test_cosine_is_stepped_per_epoch_to_a_tenth():
    s = _schedule(nb=100, epochs=20)  # warmup 1000 iterations = 10 epochs
    assert one_cycle(0, 20, 0.1) == 1.0 and one_cycle(20, 20, 0.1) == pytest.approx(0.1)
    assert one_cycle(10, 20, 0.1) == pytest.approx(0.55)
    within = {s.values(1, ni, 12)[0] for ni in range(1200, 1300)}
    assert within == {0.01 * one_cycle(12, 20, 0.1)}  # constant within an epoch
    assert s.values(1, 1300, 13)[0] < s.values(1, 1299, 12)[0]


def test_accumulation_to_the_nominal_batch_and_weight_decay_scaling():
    assert [accumulate_steps(64, b) for b in (4, 16, 24, 64, 128)] == [16, 4, 3, 1, 1]
    assert scaled_weight_decay(5e-4, 64, 4) == 5e-4
    assert scaled_weight_decay(5e-4, 64, 24) == pytest.approx(5e-4 * 72 / 64)
    assert scaled_weight_decay(5e-4, 64, 128) == pytest.approx(1e-3)
    assert scaled_weight_decay(5e-4, None, 24) == 5e-4
    s = _schedule()
    assert [s.accumulate(ni) for ni in (0, 33, 34, 1000, 5000)] == [1, 1, 2, 16, 16]


def test_accumulated_batches_make_one_step_with_their_summed_gradient():
    """``ni − last_opt_step ≥ accumulate``: after warmup every 16th batch steps, on the sum of 16."""
    torch.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    recipe = OFFICIAL.with_values(warmup_min_iters=0, warmup_epochs=0.0)
    opt_a = make_recipe_optimizer(a, recipe, batch_size=4)
    opt_b = make_recipe_optimizer(b, recipe, batch_size=4)
    sched = make_schedule(recipe, opt_a, batches_per_epoch=1000, epochs=10, batch_size=4)
    step = TrainStep(a, None, opt_a, sched, recipe, ni=1, last_opt_step=0)  # type: ignore[arg-type]
    xs = torch.randn(40, 4, 3)
    stepped = []
    for x in xs:
        sched.apply(opt_a, step.ni, 0, step.opt_steps)
        a(x).square().sum().backward()
        stepped.append(step.maybe_step())
    assert [i + 1 for i, s in enumerate(stepped) if s] == [16, 32]
    for x in xs[:16]:
        b(x).square().sum().backward()
    sched.apply(opt_b, 16, 0, 0)
    opt_b.step()
    opt_b.zero_grad()
    for x in xs[16:32]:
        b(x).square().sum().backward()
    opt_b.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_official_parameter_groups():
    model = _model()
    bn_w, w, biases = official_param_groups(model)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert {id(p) for p in bn_w} == {id(m.weight) for m in bns}
    assert {id(p) for p in biases} >= {id(m.bias) for m in bns}
    assert len(bn_w) + len(w) + len(biases) == len(list(model.parameters()))
    opt = make_recipe_optimizer(model, OFFICIAL, batch_size=24)
    assert isinstance(opt, torch.optim.SGD)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, scaled_weight_decay(5e-4, 64, 24), 0.0]
    assert all(g["nesterov"] and g["momentum"] == 0.937 and g["lr"] == 0.01 for g in opt.param_groups)


def test_ema_update_follows_yolov5():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = ModelEMA(model)
    start = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    assert not any(p.requires_grad for p in ema.ema.parameters())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model(torch.randn(8, 3))  # moves the running statistics and num_batches_tracked
    ema.update(model)
    d = 0.9999 * (1 - math.exp(-1 / 2000))
    assert ema.decay_at(1) == d
    now = model.state_dict()
    for k, v in ema.ema.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, d * start[k] + (1 - d) * now[k], rtol=0, atol=1e-7), k
        else:
            assert torch.equal(v, start[k]), k  # integer buffers keep the average's own value
    assert ema.decay_at(10**6) == pytest.approx(0.9999)


GRID_LINE_CASES = [
    # g on one axis (grid 8): official cells, symmetric cells (the other axis off the lines)
    (2.0, [2, 1, 2], [2, 1]),  # integer: own, −1, own again
    (1.0, [1, 1], [1, 0]),  # g = 1: no −1 neighbour
    (7.0, [7, 6], [7, 6]),  # far edge: the +1 cell is off the grid
    (3.5, [3], [3, 4]),  # half cell: own only
    (7.5, [7], [7]),
    (3.25, [3, 2], [3, 2]),  # off the lines both agree
    (3.75, [3, 4], [3, 4]),
]


@pytest.mark.parametrize(("g", "official", "symmetric"), GRID_LINE_CASES)
def test_assignment_on_grid_lines(g, official, symmetric):
    anchors = torch.tensor([[1.0, 1.0], [40.0, 40.0], [50.0, 50.0]])  # one anchor matches
    t = torch.tensor([[0.0, 0.0, g * 16, 3.3 * 16, 16.0, 16.0]])
    for rule, cells in (("official", official), ("symmetric", symmetric)):
        asg = assign_targets(t, anchors, (8, 8), 16.0, 4.0, rule)
        gi = asg.gi[asg.gj == 3].tolist()  # the cells along x in the box's own row
        assert sorted(gi) == sorted(cells), rule
        assert torch.equal(asg.box[:, 0], g - asg.gi.double().float()), rule


def test_shared_cell_objectness_max_or_last():
    """Two boxes in one cell: ``max`` keeps the better IoU, ``last`` the later positive's."""
    anchors = torch.tensor([[[2.0, 2.0], [40.0, 40.0], [50.0, 50.0]]])
    raw = torch.zeros(1, 3, 4, 4, 7)
    raw[0, 0, 1, 1, :4] = torch.tensor([0.0, 0.0, 0.0, 0.0])  # predicts a 2×2 box at the cell centre
    # box 0 fits the prediction well, box 1 (later) badly; both centred in cell (1, 1), off the lines
    t = torch.tensor([[0, 0, 1.5 * 16, 1.5 * 16, 32.0, 32.0], [0, 1, 1.4 * 16, 1.6 * 16, 20.0, 44.0]])
    ious = {}
    for rule in ("max", "last"):
        hyp = LossHyp(obj_target=rule, assign="official", balance=(1.0,))
        loss = YoloLoss(anchors, [16.0], 2, hyp)
        asg = loss.assign(t, 0, (4, 4))
        tobj = torch.zeros(1, 3, 4, 4)
        p = raw[asg.b, asg.a, asg.gj, asg.gi]
        iou = _ciou(p, asg)
        loss._write_obj(tobj, asg, iou)
        own = (asg.gj == 1) & (asg.gi == 1)
        ious[rule] = (float(tobj[0, 0, 1, 1]), iou[own].clamp(min=0).tolist())
    best, order = ious["max"][1], ious["last"][1]
    assert best[0] > best[1] > 0
    assert ious["max"][0] == pytest.approx(max(best)) and ious["last"][0] == pytest.approx(order[-1])


def test_fast_recipe_step_is_the_trainer_loop_it_replaces():
    """``TrainStep`` with ``FAST`` = the loop that trained the shipped model, bit for bit.

    The reference below is that loop as it stood (AdamW at 0.002, the per-step cosine with its
    warmup, clipping at 10, zero_grad before backward), so the fast recipe cannot drift.
    """
    assert (FAST.optimizer, FAST.lr0, FAST.lrf, FAST.clip, FAST.ema) == ("adamw", 0.002, 0.01, 10.0, False)
    # A clip this small binds on every step (the norms here are ~1), so clipping is exercised.
    recipe = FAST.with_values(clip=0.05)
    data = SyntheticShapes(TINY, "train")
    batches = [collate([data[i] for i in range(j, j + 2)]) for j in (0, 2, 0)]
    ref, ours = _model(1), _model(1)
    ours.load_state_dict(ref.state_dict())
    seed_everything(0)
    d = ref.detect
    criterion = YoloLoss(d.anchors, d.stride.tolist(), d.nc, LossHyp().scaled(d.nl, d.nc, data.input_size))
    opt = make_optimizer(ref, "adamw", None, 5e-4)
    base = [g["lr"] for g in opt.param_groups]
    total, warmup = 3, min(max(1, round(1.0 * 2)), max(1, 3 // 2))  # 2 batches per epoch
    ref.train()
    for step, (x, targets, _) in enumerate(batches):
        for g, b in zip(opt.param_groups, base):
            g["lr"] = b * cosine_lr(step, total, warmup)
        loss, _ = criterion(ref(x), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        assert nn.utils.clip_grad_norm_(ref.parameters(), recipe.clip) > recipe.clip
        opt.step()

    seed_everything(0)
    ours.train()
    d = ours.detect
    criterion = YoloLoss(d.anchors, d.stride.tolist(), d.nc, recipe.loss_hyp(d.nl, d.nc, data.input_size))
    opt = make_recipe_optimizer(ours, recipe, batch_size=2)
    sched = make_schedule(recipe, opt, batches_per_epoch=2, epochs=2, batch_size=2, total_steps=3)
    step = TrainStep(ours, criterion, opt, sched, recipe)
    for epoch, (x, targets, _) in zip((0, 0, 1), batches):
        assert step(x, targets, epoch).stepped
    for (k, a), b in zip(ref.state_dict().items(), ours.state_dict().values()):
        assert torch.equal(a, b), k


def test_gradients_short_of_a_step_are_dropped_when_the_next_epoch_starts():
    """As the official loop's ``optimizer.zero_grad()`` at each epoch start."""
    torch.manual_seed(1)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    recipe = OFFICIAL.with_values(warmup_min_iters=0, warmup_epochs=0.0, nominal_batch=12)  # 3 batches a step
    opt_a, opt_b = (make_recipe_optimizer(m, recipe, batch_size=4) for m in (a, b))
    sched = make_schedule(recipe, opt_a, batches_per_epoch=2, epochs=10, batch_size=4)

    def criterion(raws, targets, reduce):
        return raws.square().sum(), (0.0, 0.0, 0.0)

    step = TrainStep(a, criterion, opt_a, sched, recipe, ni=1, last_opt_step=0)  # type: ignore[arg-type]
    xs = torch.randn(4, 4, 3)
    # Steps come every 3 iterations (ni 3, 6, ...) whatever the epochs. Iterations 1 and 2 end
    # epoch 0 without a step; ni 3 opens epoch 1 and steps on its own gradient alone.
    stepped = [step(x, None, epoch).stepped for x, epoch in zip(xs, (0, 0, 1, 1))]
    assert stepped == [False, False, True, False]
    b(xs[2]).square().sum().backward()
    sched.apply(opt_b, 3, 1, 0)
    opt_b.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
