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
from .optim import cosine_lr, make_optimizer

__all__ = ["EpochInfo", "StepInfo", "TrainConfig", "TrainResult", "pick_device", "seed_everything", "train"]


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
    on_epoch_end: Callable[[EpochInfo, nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``model`` (an EMS-YOLO) on ``dataset`` in place.

    ``on_epoch_end(info, model)`` runs after every epoch (e.g. to save a checkpoint); the
    model is in train mode and on the training device when it is called.
    """
    seed_everything(config.seed)
    device = pick_device(config.device)
    model.to(device).train()
    detect = model.detect
    hyp = config.hyp.scaled(detect.nl, detect.nc, dataset.input_size)
    criterion = YoloLoss(detect.anchors, detect.stride.tolist(), detect.nc, hyp).to(device)
    optimizer = make_optimizer(model, config.optimizer, config.lr, config.weight_decay)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collate,
        drop_last=len(dataset) > config.batch_size,
        generator=torch.Generator().manual_seed(config.seed),
    )
    steps_per_epoch = len(loader)
    total = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = min(max(1, round(config.warmup_epochs * steps_per_epoch)), max(1, total // 2))
    step, epochs, start = 0, [], time.perf_counter()
    for epoch in range(config.epochs):
        t0, running, seen = time.perf_counter(), 0.0, 0
        for i, (x, targets, _) in enumerate(loader):
            if step >= total:
                break
            factor = cosine_lr(step, total, warmup)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * factor
            raws = model(x.to(device, non_blocking=True))
            loss, (lbox, lobj, lcls) = criterion(raws, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            per_image = float(loss) / len(x)
            running, seen = running + per_image * len(x), seen + len(x)
            if on_step is not None:
                on_step(StepInfo(epoch, i, steps_per_epoch, per_image, lbox, lobj, lcls, base_lrs[0] * factor))
        info = EpochInfo(epoch, running / max(seen, 1), time.perf_counter() - t0)
        epochs.append(info)
        if on_epoch_end is not None:
            on_epoch_end(info, model)
        if step >= total:
            break
    model.eval()
    return TrainResult(epochs, step, time.perf_counter() - start, str(device))
