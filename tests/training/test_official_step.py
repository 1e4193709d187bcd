"""One ``--recipe official`` training step reproduces the official EMS-YOLO code's step.

The fixture ``train_step_tiny_T4`` holds what BICLab/EMS-YOLO's ``train.py`` computes for one
batch of the tiny all-modules COCO checkpoint (128×128, batch 4, T=4): the loss components and
every parameter's gradient for three target sets (``generic``; ``shared_cell``, where the
objectness rule decides; ``grid_edge``, where the assignment rule decides), the BN running
statistics after the forward, and the parameters and EMA after the first optimiser step. The
step here runs through :class:`TrainStep` with the ``official`` recipe's optimiser, schedule,
EMA and loss, the code ``emsdeploy train --recipe official`` runs per batch.
Tolerances are the fixture README's (§6), except where its evidence allows tighter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from emsdeploy.checkpoint import import_official
from emsdeploy.models.training.assign import assign_targets
from emsdeploy.models.training.ema import ModelEMA
from emsdeploy.models.training.loss import YoloLoss
from emsdeploy.models.training.optim import make_recipe_optimizer
from emsdeploy.models.training.recipe import OFFICIAL, Recipe
from emsdeploy.models.training.schedule import make_schedule
from emsdeploy.models.training.step import TrainStep
from tests.conftest import FIXTURES, _require

GRAD_REL_F64 = 1e-6  # README §6: float64 against the reconstructed official float64 (its floor: ~1e-7)
GRAD_REL = 1e-4  # README §6: float32 gradients, rel_max per tensor (any thread count: 1.4e-5 on 1, 4.4e-6 on 2)
LOSS_REL = 1e-6
STATE_ATOL = 1e-7  # BN running statistics, the parameters and the EMA after the step
SETS = ("generic", "shared_cell", "grid_edge")


def rel_max(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


@dataclass
class Fixture:
    folder: Path
    info: dict
    names: dict[str, str]  # official name -> emsdeploy name (all state_dict keys)
    x: torch.Tensor
    model: torch.nn.Module
    start: dict[str, torch.Tensor]

    def targets(self, name: str) -> torch.Tensor:
        """The official normalised targets, in the pixels emsdeploy takes (exact: dyadic values)."""
        t = torch.from_numpy(np.load(self.folder / f"targets_{name}.npy"))
        t[:, 2:6] *= self.info["input_size"]
        return t

    def npz(self, name: str) -> np.lib.npyio.NpzFile:
        return np.load(self.folder / f"{name}.npz")


@pytest.fixture(scope="module")
def fx() -> Fixture:
    folder = _require(FIXTURES / "train_step_tiny_T4")
    ckpt = _require(FIXTURES / "tiny_all_coco_T4" / "checkpoint_last_fp32.pt")
    info = json.loads((folder / "train_step.json").read_text())
    m = json.loads((folder / "name_map_official_to_emsdeploy.json").read_text())
    model = import_official(ckpt, time_steps=info["T"], encoding="direct").build()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.from_numpy(np.load(folder / "input.npy"))
    return Fixture(folder, info, {**m["parameters"], **m["buffers"]}, x, model, start)


def official_step(fx: Fixture, recipe: Recipe) -> TrainStep:
    """The per-batch step as the trainer builds it for ``recipe``, from the checkpoint's state."""
    model = fx.model
    model.load_state_dict(fx.start)
    model.zero_grad(set_to_none=True)
    model.train()
    d = model.detect
    criterion = YoloLoss(d.anchors, d.stride.tolist(), d.nc, recipe.loss_hyp(d.nl, d.nc, fx.info["input_size"]))
    batch = fx.info["batch"]
    optimizer = make_recipe_optimizer(model, recipe, batch)
    # 300 epochs of one batch each: warmup over max(3, 1000) iterations, as for any dataset this small.
    schedule = make_schedule(recipe, optimizer, batches_per_epoch=1, epochs=300, batch_size=batch)
    ema = ModelEMA(model, recipe.ema_decay, recipe.ema_tau) if recipe.ema else None
    return TrainStep(model, criterion, optimizer, schedule, recipe, ema)


@pytest.mark.parametrize("name", SETS)
def test_assignment_is_the_official_one(fx: Fixture, name: str) -> None:
    """Every positive, in the official ``build_targets`` order (which decides ``last``), and its box."""
    ref = fx.npz(f"loss_{name}")
    t = fx.targets(name).double()
    d = fx.model.detect
    for i, stride in enumerate(d.stride.tolist()):
        grid = tuple(ref[f"last__tobj__{i}"].shape[2:4])
        asg = assign_targets(t, d.anchors[i].double(), grid, stride, OFFICIAL.anchor_t, "official")
        got = torch.stack((asg.b, asg.a, asg.gj, asg.gi), 1).numpy()
        np.testing.assert_array_equal(got, ref[f"assign__{i}"][:, 1:])
        np.testing.assert_array_equal(asg.box.float().numpy(), ref[f"tbox__{i}"])
        np.testing.assert_array_equal(asg.anchor.float().numpy(), ref[f"anchor__{i}"])


def check_grads(fx: Fixture, gradfile: str) -> list[float]:
    ref = fx.npz(gradfile)
    params = dict(fx.model.named_parameters())
    rels = []
    for k in ref.files:
        g = params[fx.names[k]].grad
        assert g is not None, k
        rels.append(rel_max(g.numpy(), ref[k]))
        assert rels[-1] <= GRAD_REL, (gradfile, k, rels[-1])
    # The tensors left out of the smaller files are checked by their L2 norm.
    for k, s in fx.info["gradients"][gradfile]["omitted_summaries"].items():
        g = params[fx.names[k]].grad.double()
        assert abs(float(g.norm()) - s["l2"]) <= GRAD_REL * s["l2"], k
    return rels


@pytest.mark.parametrize(
    ("name", "obj_target", "gradfile"),
    [
        ("generic", "last", "grads_generic"),
        ("shared_cell", "last", "grads_shared_cell_last"),
        ("shared_cell", "max", "grads_shared_cell_sorted"),
        ("grid_edge", "last", "grads_grid_edge"),
    ],
)
def test_loss_and_gradients(fx: Fixture, name: str, obj_target: str, gradfile: str) -> None:
    recipe = OFFICIAL.with_values(obj_target=obj_target)
    step = official_step(fx, recipe)
    loss, comps, _ = step.forward_backward(fx.x, fx.targets(name), epoch=0)
    ref = fx.info["loss"][name]["last" if obj_target == "last" else "sorted"]
    assert loss == pytest.approx(ref["total"], rel=LOSS_REL)
    assert list(comps) == pytest.approx(ref["box_obj_cls"], rel=LOSS_REL)
    check_grads(fx, gradfile)


def test_bn_stats_parameters_and_ema_after_the_first_step(fx: Fixture) -> None:
    step = official_step(fx, OFFICIAL)
    step.forward_backward(fx.x, fx.targets("generic"), epoch=0)
    sd = fx.model.state_dict()
    bn = fx.npz("bn_running_stats")
    for k in bn.files:
        ours = sd[fx.names[k]]
        if k.endswith("num_batches_tracked"):
            assert int(ours) == int(bn[k]), k
        else:
            np.testing.assert_allclose(ours.numpy(), bn[k], rtol=0, atol=STATE_ATOL, err_msg=k)
    # The warmup's first values: weights at lr 0, biases at warmup_bias_lr, momentum 0.8.
    groups = step.optimizer.param_groups
    assert [g["lr"] for g in groups] == [0.0, 0.0, OFFICIAL.warmup_bias_lr]
    assert [g["momentum"] for g in groups] == [OFFICIAL.warmup_momentum] * 3
    assert [len(g["params"]) for g in groups] == [g["n_params"] for g in fx.info["optimizer_step"]["groups_at_step"]]
    assert [g["weight_decay"] for g in groups] == [0.0, OFFICIAL.weight_decay, 0.0]
    assert step.maybe_step(), "the official first batch steps at once (accumulate is 1 at iteration 0)"
    params = dict(fx.model.named_parameters())
    after = fx.npz("step_generic_params")
    moved = 0
    for k in after.files:
        ours = params[fx.names[k]].detach().numpy()
        if k.endswith(".weight"):
            np.testing.assert_array_equal(ours, after[k], err_msg=k)  # lr 0: bit-identical
        else:
            np.testing.assert_allclose(ours, after[k], rtol=0, atol=STATE_ATOL, err_msg=k)
            moved += int(not np.array_equal(ours, fx.start[fx.names[k]].numpy()))
    assert moved == 29  # every bias moved
    for k in fx.info["big_tensors"]:  # left out of the file: weights, so unchanged
        assert torch.equal(params[fx.names[k]], fx.start[fx.names[k]]), k
    ema_ref = fx.npz("ema_after_first_update")
    assert step.ema is not None and step.ema.updates == 1
    ema = step.ema.ema.state_dict()
    for k in ema_ref.files:
        ours = ema[fx.names[k]]
        if ours.dtype.is_floating_point:
            np.testing.assert_allclose(ours.numpy(), ema_ref[k], rtol=0, atol=STATE_ATOL, err_msg=k)
        else:
            assert int(ours) == int(ema_ref[k]), k  # the EMA keeps its own count
    assert step.ema.decay_at(1) == pytest.approx(fx.info["optimizer_step"]["ema"]["decay_d"], rel=1e-12)


def test_float64_gradients_against_the_official_float64(fx: Fixture) -> None:
    """In float64 the comparison is 100× tighter; the official float64 floor is its ActFun's float32 cast."""
    g32, r = fx.npz("grads_generic"), fx.npz("grads_generic_float64_minus_float32")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        fx.model.double()
        step = official_step(fx, OFFICIAL)
        loss, _, _ = step.forward_backward(fx.x.double(), fx.targets("generic").double(), epoch=0)
        params = dict(fx.model.named_parameters())
        worst = 0.0
        for k in g32.files:
            ref = g32[k].astype(np.float64) + r[k].astype(np.float64)
            worst = max(worst, rel_max(params[fx.names[k]].grad.numpy(), ref))
        ref_loss = fx.info["float64"]["loss"]["float64"]["total"]
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        assert worst <= GRAD_REL_F64, worst
    finally:
        torch.set_default_dtype(default)
        fx.model.float()
        fx.model.load_state_dict(fx.start)
