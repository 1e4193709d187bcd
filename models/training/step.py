"""One training iteration under a recipe: everything that decides the numbers of a step.

:class:`TrainStep` is the body of the trainer's batch loop for every recipe. Per batch it sets
the learning rates (:mod:`.schedule`), runs the forward and the loss, and backpropagates; once
the schedule's accumulation is reached (official: ``ni − last_opt_step ≥ accumulate``, so the
very first batch steps at once) it clips (if the recipe says so), steps the optimiser, clears the
gradients and updates the EMA. As in the official ``train.py``, gradients accumulated at the end
of an epoch that did not reach a step are dropped when the next epoch begins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .ema import ModelEMA
from .recipe import Recipe
from .schedule import Schedule

__all__ = ["StepOutput", "TrainStep"]


@dataclass(frozen=True)
class StepOutput:
    loss: float  # the backpropagated loss of this rank's batch (the YOLOv5 loss, summed over images)
    box: float
    obj: float
    cls: float
    lr: float  # parameter group 0's learning rate during this batch
    stepped: bool  # whether the optimiser stepped after this batch


class TrainStep:
    """The per-batch update of ``model`` under ``recipe`` (module docstring).

    Args:
        model: the (unwrapped) model; the EMA follows it and clipping reads its parameters.
        criterion: the recipe's loss (:meth:`.recipe.Recipe.loss_hyp`).
        optimizer, schedule: from :func:`.optim.make_recipe_optimizer` and :func:`.schedule.make_schedule`.
        ema: the moving average to update after each optimiser step (``None``: no EMA).
        net: what runs the forward (the DDP wrapper under torch.distributed; default ``model``).
        reduce: the loss's cross-rank sum (:class:`.loss.YoloLoss`), ``None`` in one process.
        ranks: the world size; DDP averages gradients, so each rank's share is scaled back.
        ni, last_opt_step, opt_steps: the position to resume from (:meth:`position`).
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule,
        recipe: Recipe,
        ema: ModelEMA | None = None,
        net: nn.Module | None = None,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
        ranks: int = 1,
        ni: int = 0,
        last_opt_step: int = -1,
        opt_steps: int = 0,
    ) -> None:
        self.model = model
        self.net = model if net is None else net
        self.criterion = criterion
        self.optimizer = optimizer
        self.schedule = schedule
        self.clip = recipe.clip
        self.ema = ema
        self.reduce = reduce
        self.ranks = ranks
        self.ni = ni
        self.last_opt_step = last_opt_step
        self.opt_steps = opt_steps
        self._epoch: int | None = None

    def position(self) -> dict[str, int]:
        """Where the run stands (iterations, last step's iteration, optimiser steps): enough to resume."""
        return {"ni": self.ni, "last_opt_step": self.last_opt_step, "opt_steps": self.opt_steps}

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, epoch: int) -> StepOutput:
        """Train on one batch: ``x`` the input, ``targets`` ``[N, 6]`` in pixels (see :class:`.loss.YoloLoss`)."""
        loss, (box, obj, cls), lr = self.forward_backward(x, targets, epoch)
        stepped = self.maybe_step()
        return StepOutput(loss, box, obj, cls, lr, stepped)

    def forward_backward(
        self, x: torch.Tensor, targets: torch.Tensor, epoch: int
    ) -> tuple[float, tuple[float, float, float], float]:
        """The first half of :meth:`__call__`: schedule, forward, loss, backward (gradients add up)."""
        if epoch != self._epoch:
            self.optimizer.zero_grad(set_to_none=True)
            self._epoch = epoch
        lr = self.schedule.apply(self.optimizer, self.ni, epoch, self.opt_steps)
        raws: Sequence[torch.Tensor] = self.net(x)
        loss, comps = self.criterion(raws, targets, self.reduce)
        (loss * self.ranks if self.ranks > 1 else loss).backward()
        return float(loss), comps, lr

    def maybe_step(self) -> bool:
        """The second half: step (and update the EMA) if enough batches are accumulated; advance ``ni``."""
        ni, self.ni = self.ni, self.ni + 1
        if ni - self.last_opt_step < self.schedule.accumulate(ni):
            return False
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.last_opt_step = ni
        self.opt_steps += 1
        return True
