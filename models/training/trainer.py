"""The training loop: seeded, device-agnostic, and silent (progress and saving are callbacks).

It imports nothing outside ``emsdeploy.models``: the caller decides how to report progress
and how to write checkpoints.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.sample import DetectionDataset, collate
from .loss import LossHyp, YoloLoss
from .loss_anchor_free import AnchorFreeLoss
from .optim import cosine_lr, make_optimizer

__all__ = [
    "EpochInfo",
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
    """How to train. ``max_steps`` stops early (tests, smoke runs); ``lr=None`` takes the optimiser's default."""

    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    grad_clip: float = 10.0
    seed: int = 0
    device: str | None = None
    hyp: LossHyp = field(default_factory=LossHyp)
    max_steps: int | None = None

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("hyp", "device")}
        d["hyp"] = {k: getattr(self.hyp, k) for k in self.hyp.__dataclass_fields__}
        d["hyp"]["balance"] = list(self.hyp.balance)
        return d


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
    steps: int
    seconds: float
    device: str


@dataclass
class TrainState:
    """Everything besides the weights that a resumed run needs to continue as if never stopped.

    Taken at the end of an epoch: the optimiser's moments, the schedule position (``step``;
    the learning rate is a pure function of it), the loader's shuffling generator and the
    global RNGs. Plain tensors, numbers and lists only, so the project's checked reader reads it back.
    """

    epoch: int  # epochs finished
    step: int  # optimiser steps taken
    optimizer: dict
    loader_rng: torch.Tensor
    rng: dict

    def to_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer,
            "loader_rng": self.loader_rng,
            "rng": self.rng,
        }

    @classmethod
    def from_dict(cls, d: dict) -> TrainState:
        return cls(int(d["epoch"]), int(d["step"]), d["optimizer"], d["loader_rng"], d["rng"])


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(
    model: nn.Module,
    dataset: DetectionDataset,
    config: TrainConfig,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch_end: Callable[[EpochInfo, nn.Module, TrainState], None] | None = None,
    resume: TrainState | None = None,
) -> TrainResult:
    """Train ``model`` (an EMS-YOLO, or a SpikeYOLO with the anchor-free loss) on ``dataset`` in place.

    ``on_epoch_end(info, model, state)`` runs after every epoch on every rank (e.g. rank 0
    saves a checkpoint and ``state``); the model is in train mode and on the training device
    when it is called. ``resume`` continues from such a state (the weights already loaded).

    With a torch.distributed process group open (torchrun), it trains with
    DistributedDataParallel: each rank takes its slice of every global batch of
    ``config.batch_size`` and the step equals the single-process step (see :mod:`.ddp`);
    reported losses are summed over ranks.
    """
    from .ddp import RankBatches, all_sum, sync_batchnorm, world_size

    seed_everything(config.seed)
    device = pick_device(config.device)
    model.to(device).train()
    detect = model.detect
    if getattr(detect, "reg_max", None):  # anchor-free head (SpikeYOLO): the YOLOv8 loss, its own gains
        criterion: nn.Module = AnchorFreeLoss.for_model(model).to(device)
    else:
        hyp = config.hyp.scaled(detect.nl, detect.nc, dataset.input_size)
        criterion = YoloLoss(detect.anchors, detect.stride.tolist(), detect.nc, hyp).to(device)
    optimizer = make_optimizer(model, config.optimizer, config.lr, config.weight_decay)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    generator = torch.Generator().manual_seed(config.seed)
    drop_last = len(dataset) > config.batch_size
    ranks = world_size()
    if ranks == 1:
        loader = DataLoader(
            dataset,
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
        batches = RankBatches(dataset, config.batch_size, drop_last, generator, rank, ranks)
        loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate, generator=generator)
        sync_batchnorm(model)
        ids = [device.index] if device.type == "cuda" and device.index is not None else None
        net, reduce = DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False), all_sum
    steps_per_epoch = len(loader)
    total = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = min(max(1, round(config.warmup_epochs * steps_per_epoch)), max(1, total // 2))
    step, first_epoch, epochs, start = 0, 0, [], time.perf_counter()
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)
        generator.set_state(resume.loader_rng)
        _set_rng_state(resume.rng)
        step, first_epoch = resume.step, resume.epoch
    for epoch in range(first_epoch, config.epochs):
        if step >= total:
            break
        t0, running, seen = time.perf_counter(), 0.0, 0
        for i, (x, targets, _) in enumerate(loader):
            if step >= total:
                break
            factor = cosine_lr(step, total, warmup)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * factor
            raws = net(x.to(device, non_blocking=True))
            loss, (lbox, lobj, lcls) = criterion(raws, targets, reduce)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks; the shares add up to the loss, so scale them back.
            (loss * ranks if ranks > 1 else loss).backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            n = len(x)
            if ranks > 1:  # metrics of the global batch
                loss_sum, lbox, lobj, lcls, n = all_sum(
                    torch.tensor([float(loss), lbox, lobj, lcls, n], dtype=torch.float64, device=device)
                ).tolist()
                n = int(n)
            else:
                loss_sum = float(loss)
            per_image = loss_sum / n
            running, seen = running + per_image * n, seen + n
            if on_step is not None:
                on_step(StepInfo(epoch, i, steps_per_epoch, per_image, lbox, lobj, lcls, base_lrs[0] * factor))
        info = EpochInfo(epoch, running / max(seen, 1), time.perf_counter() - t0)
        epochs.append(info)
        if on_epoch_end is not None:
            state = TrainState(epoch + 1, step, optimizer.state_dict(), generator.get_state(), _rng_state())
            on_epoch_end(info, model, state)
        if step >= total:
            break
    if ranks > 1:
        sync_batchnorm(model, on=False)
    model.eval()
    return TrainResult(epochs, step, time.perf_counter() - start, str(device))
