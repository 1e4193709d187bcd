"""Per-step layers SpikeYOLO needs beyond :mod:`models.layers`, on time-first ``[T, B, C, H, W]``.

SpikeYOLO normalises with ordinary BatchNorm over ``T·B`` (no tdBN, no threshold scaling), pads
some depthwise convs with BN(0) instead of 0, and pools BN currents with a stride-1 window.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..layers import _per_step, check_time_first

__all__ = ["BN_EPS", "BN_MOMENTUM", "BNAndPad", "SeqBatchNorm2d", "SeqMaxPoolSame"]

# The official ``initialize_weights`` sets these on every BatchNorm2d; checkpoints keep them on
# the pickled modules only (not in the state_dict).
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


class SeqBatchNorm2d(nn.BatchNorm2d):
    r"""``nn.BatchNorm2d`` over the time-folded batch ``T·B`` (statistics over T, B, H, W).

    At inference :math:`y = \gamma (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta`, with
    SpikeYOLO's ε = 1e-3 by default.
    """

    def __init__(self, num_features: int, eps: float = BN_EPS, momentum: float = BN_MOMENTUM) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_time_first(x, "SeqBatchNorm2d")
        return _per_step(super().forward, x)


class BNAndPad(nn.Module):
    """BatchNorm, then a border of ``pad`` pixels filled per channel with BN(0).

    BN(0) is ``β − μ·γ/√(σ²+ε)`` (from the running statistics, also in training, as the official
    ``BNAndPadLayer``), so BN-then-pad equals zero-pad-then-BN and the following conv folds
    exactly. The BN lives at ``.bn`` (official key ``….bn.weight``).
    """

    def __init__(self, pad: int, num_features: int, eps: float = BN_EPS, momentum: float = BN_MOMENTUM) -> None:
        super().__init__()
        self.pad = int(pad)
        self.bn = SeqBatchNorm2d(num_features, eps, momentum)

    def pad_values(self) -> torch.Tensor:
        """The per-channel border value BN(0), ``[C]``."""
        bn = self.bn
        return bn.bias.detach() - bn.running_mean * bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(x)
        if self.pad == 0:
            return y
        p = self.pad
        padded = F.pad(y, [p, p, p, p])
        inside = F.pad(torch.ones(y.shape[-2:], dtype=torch.bool, device=y.device), [p, p, p, p])
        return torch.where(inside, padded, self.pad_values().view(-1, 1, 1).to(y.dtype))

    def extra_repr(self) -> str:
        return f"pad={self.pad}"


class SeqMaxPoolSame(nn.Module):
    """Stride-1 ``k×k`` max-pool with ``k//2`` padding (−∞ border) at every step; SPPF's pool."""

    def __init__(self, kernel_size: int = 5) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"SeqMaxPoolSame: kernel_size must be odd and positive, got {kernel_size}")
        self.kernel_size = int(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return _per_step(lambda y: F.max_pool2d(y, k, 1, k // 2), x)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"
