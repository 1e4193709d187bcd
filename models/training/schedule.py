"""Learning rate, momentum and gradient accumulation as pure functions of the training position.

A schedule answers, for iteration ``ni`` (batches since the start of training) in ``epoch``,
what each parameter group's learning rate and momentum are and how many batches make one
optimiser step. Being pure, a resumed run needs only ``ni`` and ``epoch`` to continue exactly.

- :class:`EpochSchedule` is the official EMS-YOLO/YOLOv5 one (``train.py``): over the first
  ``nw = max(round(warmup_epochs · nb), warmup_min_iters)`` iterations every value moves linearly
  (``np.interp``) from its warmup start (learning rate 0 for weights, ``warmup_bias_lr`` for
  biases, momentum ``warmup_momentum``) to its target, and the accumulation from 1 batch to the
  nominal one; the learning rate target is ``lr0 · one_cycle(epoch)``, a cosine from 1 to ``lrf``
  stepped once per epoch.
- :class:`StepSchedule` is the ``fast`` recipe's: a factor ``(step + 1) / warmup`` for the
  warmup, then a cosine per optimiser step to ``lrf``; no momentum or bias warmup, no accumulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .optim import accumulate_steps, cosine_lr
from .recipe import Recipe

__all__ = ["EpochSchedule", "Schedule", "StepSchedule", "make_schedule", "one_cycle"]

BIAS_GROUP = 2  # index of the bias group in :func:`.optim.official_param_groups`'s order


def one_cycle(epoch: float, epochs: int, lrf: float) -> float:
    """Learning-rate factor of ``epoch``: a half cosine from 1 at epoch 0 to ``lrf`` at ``epochs``."""
    return ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1


class Schedule:
    """What every schedule offers the training step."""

    def accumulate(self, ni: int) -> int:
        """Batches per optimiser step at iteration ``ni``."""
        raise NotImplementedError

    def apply(self, optimizer: torch.optim.Optimizer, ni: int, epoch: int, opt_steps: int) -> float:
        """Set every group's learning rate (and momentum) for iteration ``ni``; return group 0's lr.

        ``opt_steps`` is the number of optimiser steps taken so far (the fast schedule runs on it).
        """
        raise NotImplementedError


@dataclass(frozen=True)
class EpochSchedule(Schedule):
    """The official warmup and per-epoch cosine (module docstring) for 3 parameter groups."""

    lr0: float
    lrf: float
    momentum: float
    warmup_momentum: float
    warmup_bias_lr: float
    epochs: int
    warmup_iters: int
    nominal_accumulate: int  # max(round(nominal_batch / batch_size), 1)
    nominal_ratio: float  # nominal_batch / batch_size, unrounded (the warmup interpolates to it)

    def lr_target(self, epoch: int) -> float:
        return self.lr0 * one_cycle(epoch, self.epochs, self.lrf)

    def accumulate(self, ni: int) -> int:
        if ni <= self.warmup_iters:
            return max(1, int(np.interp(ni, [0, self.warmup_iters], [1, self.nominal_ratio]).round()))
        return self.nominal_accumulate

    def values(self, group: int, ni: int, epoch: int) -> tuple[float, float]:
        """``(lr, momentum)`` of parameter group ``group`` (2 = biases) at iteration ``ni``."""
        target = self.lr_target(epoch)
        if ni > self.warmup_iters:
            return target, self.momentum
        xi = [0, self.warmup_iters]
        start = self.warmup_bias_lr if group == BIAS_GROUP else 0.0
        lr = float(np.interp(ni, xi, [start, target]))
        return lr, float(np.interp(ni, xi, [self.warmup_momentum, self.momentum]))

    def apply(self, optimizer: torch.optim.Optimizer, ni: int, epoch: int, opt_steps: int) -> float:
        for j, group in enumerate(optimizer.param_groups):
            lr, momentum = self.values(j, ni, epoch)
            group["lr"] = lr
            if "momentum" in group:  # SGD; like the official code, Adam's beta1 is not warmed up
                group["momentum"] = momentum
        return optimizer.param_groups[0]["lr"]


@dataclass(frozen=True)
class StepSchedule(Schedule):
    """The fast recipe's schedule: :func:`.optim.cosine_lr` per optimiser step times each group's base lr."""

    base_lrs: tuple[float, ...]
    total: int  # optimiser steps in the run
    warmup: int  # warmup steps
    lrf: float

    def accumulate(self, ni: int) -> int:
        return 1

    def apply(self, optimizer: torch.optim.Optimizer, ni: int, epoch: int, opt_steps: int) -> float:
        factor = cosine_lr(opt_steps, self.total, self.warmup, self.lrf)
        for group, base in zip(optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        return self.base_lrs[0] * factor


def make_schedule(
    recipe: Recipe,
    optimizer: torch.optim.Optimizer,
    batches_per_epoch: int,
    epochs: int,
    batch_size: int,
    total_steps: int | None = None,
) -> Schedule:
    """The schedule ``recipe`` asks for, for a run of ``epochs`` × ``batches_per_epoch`` batches.

    ``total_steps`` caps the fast schedule's length (a run stopped early by ``max_steps``
    still completes its cosine), as the trainer always did; the official one ignores it.
    """
    if recipe.lr_schedule == "step":
        total = epochs * batches_per_epoch if total_steps is None else total_steps
        warmup = min(max(1, round(recipe.warmup_epochs * batches_per_epoch)), max(1, total // 2))
        return StepSchedule(tuple(g["lr"] for g in optimizer.param_groups), total, warmup, recipe.lrf)
    nominal = recipe.nominal_batch if recipe.nominal_batch is not None else batch_size
    return EpochSchedule(
        lr0=recipe.lr0,
        lrf=recipe.lrf,
        momentum=recipe.momentum,
        warmup_momentum=recipe.warmup_momentum,
        warmup_bias_lr=recipe.warmup_bias_lr,
        epochs=epochs,
        warmup_iters=max(round(recipe.warmup_epochs * batches_per_epoch), recipe.warmup_min_iters),
        nominal_accumulate=accumulate_steps(nominal, batch_size),
        nominal_ratio=nominal / batch_size,
    )
