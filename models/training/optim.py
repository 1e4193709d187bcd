"""Optimiser with YOLOv5's parameter groups, and a warmed-up cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "cosine_lr", "make_optimizer"]

OPTIMIZERS = ("sgd", "adamw")
DEFAULT_LR = {"sgd": 0.01, "adamw": 0.002}


def make_optimizer(
    model: nn.Module, name: str, lr: float | None = None, weight_decay: float = 5e-4, momentum: float = 0.937
) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; weight decay only on conv weights, never on norms or biases.

    Decaying BN scales would pull tdBN's γ (which sets how far currents sit from V_th)
    towards zero and silence the neurons; biases have no scale to regularise.
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


def cosine_lr(step: int, total: int, warmup: int, final_fraction: float = 0.01) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then a cosine from 1 to ``final_fraction``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
