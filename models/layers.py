"""Per-time-step layers on time-first tensors ``[T, B, C, H, W]``.

Each layer applies an ordinary 2-D operation to every time step with shared parameters.
Folding time into the batch gives the same numbers as looping over steps, and keeps the
time axis explicit at the module boundary.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Concat", "Sample", "SeqConv2d", "SeqMaxPool2d", "TdBatchNorm", "check_time_first"]


def check_time_first(x: torch.Tensor, where: str) -> None:
    if x.dim() != 5:
        raise ValueError(f"{where}: expected a time-first tensor [T, B, C, H, W], got shape {tuple(x.shape)}")


def _per_step(fn, x: torch.Tensor) -> torch.Tensor:
    t, b = x.shape[:2]
    y = fn(x.reshape(t * b, *x.shape[2:]))
    return y.reshape(t, b, *y.shape[1:])


class SeqConv2d(nn.Conv2d):
    """``nn.Conv2d`` applied at every time step (the official ``Snn_Conv2d``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _per_step(super().forward, x)


class TdBatchNorm(nn.modules.batchnorm._BatchNorm):
    r"""Threshold-dependent BatchNorm (tdBN, paper eq. 5).

    Statistics are per channel over (T, B, H, W); at inference it is the affine map
    :math:`y = \gamma (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta`. The tdBN factor
    :math:`\alpha V_{th}` exists only as the initial value of γ: 0.5 normally, 0.1 for the
    last BN of a residual branch.
    """

    def __init__(self, num_features: int, gamma_init: float = 0.5, eps: float = 1e-5, momentum: float = 0.1) -> None:
        self.gamma_init = float(gamma_init)
        super().__init__(num_features, eps=eps, momentum=momentum)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.constant_(self.weight, self.gamma_init)
            nn.init.zeros_(self.bias)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 4:  # called on the time-folded [T·B, C, H, W] view
            raise ValueError(f"TdBatchNorm: expected [T, B, C, H, W] input, got {x.dim() + 1}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_time_first(x, "TdBatchNorm")
        return _per_step(super().forward, x)


class SeqMaxPool2d(nn.Module):
    """Per-step ``s×s`` max-pool with stride ``s`` (the official ``MaxPool3d((1, s, s))``)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x
        return _per_step(lambda y: F.max_pool2d(y, self.stride, self.stride), x)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class Sample(nn.Module):
    """Nearest-neighbour upsampling by an integer factor at every step."""

    def __init__(self, scale_factor: int = 2) -> None:
        super().__init__()
        self.scale_factor = int(scale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _per_step(lambda y: F.interpolate(y, scale_factor=self.scale_factor, mode="nearest"), x)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}"


class Concat(nn.Module):
    """Channel concatenation of time-first tensors, in the config's ``from`` order."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, dim=2)
