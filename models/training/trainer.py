"""The training loop: seeded, device-agnostic, and silent (progress, validation and saving are
callbacks).

The loop is recipe-agnostic: what one batch does to the weights (schedule, loss, accumulation,
clipping, EMA) is :class:`.step.TrainStep`'s; what the data look like (augmentation) is
:mod:`..data.augment`'s; the anchors are checked once before the first epoch
(:mod:`.autoanchor`). It imports nothing outside ``emsdeploy.models``: the caller decides how
to report progress and how to write checkpoints.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.augment import Augmentation, AugmentedDataset
from ..data.sample import DetectionDataset, collate
from .autoanchor import AnchorCheck, check_anchors, label_sizes
from .ema import ModelEMA
from .loss import YoloLoss
from .loss_anchor_free import AnchorFreeLoss
from .optim import make_recipe_optimizer
from .recipe import FAST, Recipe
from .schedule import make_schedule
from .step import TrainStep

__all__ = [
    "EpochInfo",
    "augmentation_of",
    "make_criterion",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "pick_device",
    "seed_everything",
    "train",
]


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the run's size and seed, and the :class:`.recipe.Recipe` (every hyperparameter).

    ``max_steps`` stops after that many batches (tests, smoke runs); the fast recipe's cosine
    still completes within them.
    """

    epochs: int = 10
    batch_size: int = 32
    recipe: Recipe = FAST
    seed: int = 0
    device: str | None = None
    max_steps: int | None = None

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "max_steps": self.max_steps,
            "recipe": self.recipe.to_dict(),
        }


@dataclass(frozen=True)
class StepInfo:
    epoch: int
    step: int  # within the epoch
    steps_per_epoch: int
    loss: float  # per image
    box: float
    obj: float
    cls: float
    lr: float


@dataclass(frozen=True)
class EpochInfo:
    epoch: int
    mean_loss: float  # per image, over the epoch
    seconds: float


@dataclass
class TrainResult:
    epochs: list[EpochInfo]
    steps: int  # batches trained on
    seconds: float
    device: str
    optimizer_steps: int = 0
    anchors: AnchorCheck | None = None  # what autoanchor found (None: the recipe does not check)
    augmented: bool = False


@dataclass
class TrainState:
    """Everything besides the saved weights that a resumed run needs to continue as if never stopped.

    Taken at the end of an epoch: the optimiser's moments, the position in the schedule
    (``step``: batches; ``position``: :meth:`.step.TrainStep.position`; the learning rate is a
    pure function of it), the loader's shuffling generator, the global RNGs and, with an EMA,
    the average and the trained weights (the checkpoint holds the average). Plain tensors,
    numbers and lists only, so the project's checked reader reads it back.
    """

    epoch: int  # epochs finished
    step: int  # batches trained on
    optimizer: dict
    loader_rng: torch.Tensor
    rng: dict
    position: dict | None = None
    ema: dict | None = None
    weights: dict | None = None  # the trained (not averaged) weights, when the checkpoint holds the EMA

    def to_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer,
            "loader_rng": self.loader_rng,
            "rng": self.rng,
            "position": self.position,
            "ema": self.ema,
            "weights": self.weights,
        }

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        return cls(
            int(d["epoch"]),
            int(d["step"]),
            d["optimizer"],
            d["loader_rng"],
            d["rng"],
            d.get("position"),
            d.get("ema"),
            d.get("weights"),
        )


def _rng_state() -> dict:
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np.asarray(np_keys).astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def _plain_ema(ema: ModelEMA | None) -> dict | None:
    """The EMA's state as plain dicts and numbers (the checked reader refuses an OrderedDict's pickled state)."""
    if ema is None:
        return None
    state = ema.state_dict()
    return {**state, "weights": dict(state["weights"])}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_criterion(model: nn.Module, recipe: Recipe, input_size: int) -> nn.Module:
    """The loss ``recipe`` trains ``model``'s head with (after autoanchor: it copies the anchors).

    The one place that picks a loss for a head: an anchor-based Detect takes YOLOv5's loss; an
    anchor-free head (SpikeYOLO's, with DFL bins) the YOLOv8 loss with its own gains.
    """
    detect = model.detect
    if getattr(detect, "reg_max", None):
        return AnchorFreeLoss.for_model(model)
    hyp = recipe.loss_hyp(detect.nl, detect.nc, input_size)
    return YoloLoss(detect.anchors, detect.stride.tolist(), detect.nc, hyp)


def augmentation_of(recipe: Recipe) -> Augmentation:
    """The augmentation hyperparameters of ``recipe``."""
    return Augmentation(**{k: getattr(recipe, k) for k in Augmentation.__dataclass_fields__})


def train(
    model: nn.Module,
    dataset: DetectionDataset,
    config: TrainConfig,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch_end: Callable[[EpochInfo, nn.Module, TrainState], None] | None = None,
    resume: TrainState | None = None,
) -> TrainResult:
    """Train ``model`` (an EMS-YOLO, or a SpikeYOLO with the anchor-free loss) on ``dataset`` in place, as ``config.recipe`` says.

    Before the first epoch (not on resume), a recipe with ``autoanchor`` checks the anchors
    against the labels and refits them in the model if they fit badly. Image data are
    augmented when the recipe asks for it (event frames never are).

    ``on_epoch_end(info, model, state)`` runs after every epoch on every rank (e.g. rank 0
    validates and saves a checkpoint and ``state``); ``model`` is what the recipe validates and
    saves: the EMA of the weights when the recipe keeps one (in eval mode), else the model
    itself (in train mode; the next epoch sets train mode again). ``resume`` continues from such
    a state (the saved weights already loaded).

    With a torch.distributed process group open (torchrun), it trains with
    DistributedDataParallel: each rank takes its slice of every global batch of
    ``config.batch_size`` and the step equals the single-process step (see :mod:`.ddp`);
    reported losses are summed over ranks.
    """
    from .ddp import RankBatches, all_sum, sync_batchnorm, world_size

    recipe = config.recipe
    seed_everything(config.seed)
    device = pick_device(config.device)
    model.to(device).train()
    detect = model.detect
    anchors = None
    if recipe.autoanchor and resume is None and not getattr(detect, "reg_max", None):  # anchor-free: none to fit
        anchors = check_anchors(detect, label_sizes(dataset), recipe.anchor_t, seed=config.seed)
        if anchors.anchors is not None and isinstance(getattr(model, "config", None), dict):
            model.config["anchors"] = [
                [v for wh in scale for v in wh] for scale in anchors.anchors
            ]  # the config says what it holds
    aug = augmentation_of(recipe)
    augmented = aug.active and dataset.encoding == "direct"  # event data: never augmented (official Gen1)
    data: DetectionDataset = AugmentedDataset(dataset, aug, config.seed) if augmented else dataset
    criterion = make_criterion(model, recipe, dataset.input_size).to(device)
    optimizer = make_recipe_optimizer(model, recipe, config.batch_size)
    ema = ModelEMA(model, recipe.ema_decay, recipe.ema_tau) if recipe.ema else None  # before any DDP change
    generator = torch.Generator().manual_seed(config.seed)
    drop_last = len(dataset) > config.batch_size
    ranks = world_size()
    if ranks == 1:
        loader = DataLoader(
            data,
            batch_size=config.batch_size,
            shuffle=True,
            collate_fn=collate,
            drop_last=drop_last,
            generator=generator,
        )
        net, reduce = model, None
    else:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        rank = dist.get_rank()
        batches = RankBatches(data, config.batch_size, drop_last, generator, rank, ranks)
        loader = DataLoader(data, batch_sampler=batches, collate_fn=collate, generator=generator)
        sync_batchnorm(model)
        ids = [device.index] if device.type == "cuda" and device.index is not None else None
        net, reduce = DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False), all_sum
    steps_per_epoch = len(loader)
    total = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    schedule = make_schedule(recipe, optimizer, steps_per_epoch, config.epochs, config.batch_size, total)
    step, first_epoch, epochs, start = 0, 0, [], time.perf_counter()
    position: dict = {}
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)
        generator.set_state(resume.loader_rng)
        _set_rng_state(resume.rng)
        step, first_epoch = resume.step, resume.epoch
        position = dict(resume.position or {"ni": step, "last_opt_step": step - 1, "opt_steps": step})
        if ema is not None and resume.ema is not None:
            ema.load_state_dict(resume.ema)
    trainer = TrainStep(model, criterion, optimizer, schedule, recipe, ema, net, reduce, ranks, **position)
    for epoch in range(first_epoch, config.epochs):
        if step >= total:
            break
        model.train()
        if isinstance(data, AugmentedDataset):
            data.set_epoch(epoch)
        t0, running, seen = time.perf_counter(), 0.0, 0
        for i, (x, targets, _) in enumerate(loader):
            if step >= total:
                break
            out = trainer(x.to(device, non_blocking=True), targets, epoch)
            step += 1
            n, loss_sum, lbox, lobj, lcls = len(x), out.loss, out.box, out.obj, out.cls
            if ranks > 1:  # metrics of the global batch
                loss_sum, lbox, lobj, lcls, n = all_sum(
                    torch.tensor([loss_sum, lbox, lobj, lcls, n], dtype=torch.float64, device=device)
                ).tolist()
                n = int(n)
            per_image = loss_sum / n
            running, seen = running + per_image * n, seen + n
            if on_step is not None:
                on_step(StepInfo(epoch, i, steps_per_epoch, per_image, lbox, lobj, lcls, out.lr))
        info = EpochInfo(epoch, running / max(seen, 1), time.perf_counter() - t0)
        epochs.append(info)
        if on_epoch_end is not None:
            state = TrainState(
                epoch + 1,
                step,
                optimizer.state_dict(),
                generator.get_state(),
                _rng_state(),
                trainer.position(),
                _plain_ema(ema),
                dict(model.state_dict()) if ema is not None else None,  # a plain dict: no pickled attributes
            )
            on_epoch_end(info, ema.ema if ema is not None else model, state)
        if step >= total:
            break
    if ranks > 1:
        sync_batchnorm(model, on=False)
    if ema is not None:  # what the recipe keeps: the average (the caller saves ``model``)
        model.load_state_dict(ema.ema.state_dict())
    model.eval()
    return TrainResult(epochs, step, time.perf_counter() - start, str(device), trainer.opt_steps, anchors, augmented)
