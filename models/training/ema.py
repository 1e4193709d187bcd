"""An exponential moving average of the weights, as YOLOv5's ``ModelEMA`` (the official recipe).

The average, not the trained model, is what the official ``train.py`` validates and saves: it
smooths the noise of the last steps. Every floating-point entry of the state dict moves,
parameters and buffers alike (BN running statistics, the anchors); integer buffers
(``num_batches_tracked``) keep the average's own value. The decay ramps up as
``decay · (1 − exp(−updates / tau))``, so early on, when the weights change fast, the average
follows them closely.
"""

from __future__ import annotations

import math
from copy import deepcopy

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """The moving average of ``model``; call :meth:`update` after every optimiser step.

    Args:
        model: the model being trained (unwrapped, not DDP); copied as the average's start.
        decay: the decay the ramp approaches.
        tau: updates over which the ramp rises by a factor ``1 − 1/e``.
        updates: updates already made (when resuming).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = deepcopy(model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.tau = float(tau)
        self.updates = int(updates)

    def decay_at(self, updates: int) -> float:
        """The decay used by the ``updates``-th update (counting from 1)."""
        return self.decay * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``: ``v ← d·v + (1 − d)·model_v`` for every float entry."""
        self.updates += 1
        d = self.decay_at(self.updates)
        current = model.state_dict()
        for key, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v *= d
                v += (1 - d) * current[key].detach()

    def state_dict(self) -> dict:
        """The average's weights and its update count (plain tensors and numbers, for checkpoints)."""
        return {"weights": self.ema.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
