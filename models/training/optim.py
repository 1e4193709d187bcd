"""Optimisers with YOLOv5's parameter groups.

Weight decay applies to convolution weights only, never to norms or biases: decaying BN
scales would pull tdBN's γ (which sets how far currents sit from V_th) towards zero and
silence the neurons; biases have no scale to regularise.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .recipe import Recipe

__all__ = [
    "OPTIMIZERS",
    "accumulate_steps",
    "cosine_lr",
    "make_optimizer",
    "make_recipe_optimizer",
    "official_param_groups",
    "scaled_weight_decay",
]

OPTIMIZERS = ("sgd", "adamw")
DEFAULT_LR = {"sgd": 0.01, "adamw": 0.002}


def make_optimizer(
    model: nn.Module, name: str, lr: float | None = None, weight_decay: float = 5e-4, momentum: float = 0.937
) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW in two groups: conv weights (decayed), everything else (not decayed).

    This is the ``fast`` recipe's optimiser; :func:`make_recipe_optimizer` builds either.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; supported: {', '.join(OPTIMIZERS)}")
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
            (decay if pname == "weight" and not is_norm else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))


def official_param_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """YOLOv5's three groups, in its order: BN weights, other weights, biases (every module's).

    Frozen parameters stay in their group (they get no gradient, so the optimiser skips them),
    as in the official ``train.py``.
    """
    bn_weights: list[nn.Parameter] = []
    weights: list[nn.Parameter] = []
    biases: list[nn.Parameter] = []
    for module in model.modules():
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter):
            biases.append(bias)
        weight = getattr(module, "weight", None)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if isinstance(weight, nn.Parameter):
                bn_weights.append(weight)
        elif isinstance(weight, nn.Parameter):
            weights.append(weight)
    return bn_weights, weights, biases


def accumulate_steps(nominal_batch: int | None, batch_size: int) -> int:
    """Batches whose gradients are summed per optimiser step: ``max(round(nominal / batch), 1)``."""
    if nominal_batch is None:
        return 1
    return max(round(nominal_batch / batch_size), 1)


def scaled_weight_decay(weight_decay: float, nominal_batch: int | None, batch_size: int) -> float:
    """Weight decay per optimiser step, scaled to the images it sees (``batch · accumulate / nominal``).

    The official ``train.py`` scales it so that one step's decay is the same whatever the batch.
    """
    if nominal_batch is None:
        return weight_decay
    return weight_decay * batch_size * accumulate_steps(nominal_batch, batch_size) / nominal_batch


def make_recipe_optimizer(model: nn.Module, recipe: Recipe, batch_size: int) -> torch.optim.Optimizer:
    """The optimiser a :class:`~.recipe.Recipe` asks for, with the learning rate at ``recipe.lr0``.

    ``lr_schedule="epoch"`` (official): YOLOv5's three groups: 0 BN weights (no decay),
    1 other weights (decay scaled by :func:`scaled_weight_decay`), 2 biases (no decay); the
    schedule tells them apart (biases warm up from ``warmup_bias_lr``). ``"step"`` (fast):
    :func:`make_optimizer`'s two groups.
    """
    if recipe.lr_schedule == "step":
        wd = scaled_weight_decay(recipe.weight_decay, recipe.nominal_batch, batch_size)
        return make_optimizer(model, recipe.optimizer, recipe.lr0, wd, recipe.momentum)
    bn_weights, weights, biases = official_param_groups(model)
    first = [{"params": bn_weights}]  # a group even when empty: the schedule finds biases at index 2
    if recipe.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(first, lr=recipe.lr0, momentum=recipe.momentum, nesterov=True)
    else:
        opt = torch.optim.AdamW(first, lr=recipe.lr0, betas=(recipe.momentum, 0.999), weight_decay=0.0)
    opt.add_param_group(
        {"params": weights, "weight_decay": scaled_weight_decay(recipe.weight_decay, recipe.nominal_batch, batch_size)}
    )
    opt.add_param_group({"params": biases, "weight_decay": 0.0})
    return opt


def cosine_lr(step: int, total: int, warmup: int, final_fraction: float = 0.01) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then a cosine from 1 to ``final_fraction``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
