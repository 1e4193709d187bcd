"""Firing rates of every LIF population: the share of (step, neuron) pairs that spike."""

from __future__ import annotations

import torch
from torch import nn

from ..neurons import LIF
from ..recording import record_neurons

__all__ = ["firing_rates"]


@torch.no_grad()
def firing_rates(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """``{module path: mean spike rate}`` of every LIF on input ``x``, in module order."""
    model.eval()
    with record_neurons(model, kinds=(LIF,)) as records:
        model(x)
    order = [name for name, _ in model.named_modules() if name in records]
    return {name: float(records[name].float().mean()) for name in order}
