"""Spiking and non-spiking neuron modules of EMS-YOLO (DESIGN.md §3).

Both neurons act on time-first tensors ``[T, B, ...]`` and take ``T`` from the input.
State starts at zero on every call, as in the official code, so no reset is needed
between samples.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LIF", "IntegerLIF", "SiLUNeuron", "integer_spike_fn", "spike_fn"]


class _RectSpike(torch.autograd.Function):
    """Heaviside forward, rectangular surrogate backward (paper eq. 3)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, v_th: float, width: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.v_th, ctx.width = v_th, width
        return (u > v_th).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        window = ((u - ctx.v_th).abs() < ctx.width / 2).to(grad.dtype)
        return grad * window / ctx.width, None, None


def spike_fn(u: torch.Tensor, v_th: float = 0.5, width: float = 1.0) -> torch.Tensor:
    """``S = 1[u > v_th]`` (strict); ``dS/du = (1/width)·1[|u − v_th| < width/2]``."""
    return _RectSpike.apply(u, v_th, width)


class LIF(nn.Module):
    r"""Leaky integrate-and-fire neuron with multiplicative hard reset (paper eq. 1–2).

    .. math::
        U[0] = I[0],\quad U[t] = \tau\,U[t-1]\,(1 - S[t-1]) + I[t],\quad S[t] = \mathbb{1}[U[t] > V_{th}]

    The reset term is detached from the graph, as in the official ``mem_update``.

    Args:
        tau: leak factor per step (dimensionless; the paper's "decay", 0.25).
        v_th: firing threshold, compared strictly (0.5).
        surrogate_width: width ``a`` of the rectangular surrogate gradient (official: 1).
    """

    def __init__(self, tau: float = 0.25, v_th: float = 0.5, surrogate_width: float = 1.0) -> None:
        super().__init__()
        self.tau = float(tau)
        self.v_th = float(v_th)
        self.surrogate_width = float(surrogate_width)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        u = current[0]
        s = spike_fn(u, self.v_th, self.surrogate_width)
        out = [s]
        for t in range(1, current.shape[0]):
            # Same operation order as the official code: (U·τ)·(1 − S) + I.
            u = u * self.tau * (1.0 - s.detach()) + current[t]
            s = spike_fn(u, self.v_th, self.surrogate_width)
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_th={self.v_th}, surrogate_width={self.surrogate_width}"


class _IntegerSpike(torch.autograd.Function):
    """``round(clamp(u, 0, D))`` forward (half to even, as ``torch.round``); straight-through
    backward inside ``[0, D]`` and zero outside, as SpikeYOLO's official quantizer."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, levels: int) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.levels = levels
        return torch.round(torch.clamp(u, 0, levels))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        inside = ((u >= 0) & (u <= ctx.levels)).to(grad.dtype)
        return grad * inside, None


def integer_spike_fn(u: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """``S = round(clamp(u, 0, D))`` with round half to even; straight-through gradient in ``[0, D]``."""
    return _IntegerSpike.apply(u, levels)


class IntegerLIF(nn.Module):
    r"""SpikeYOLO's integer LIF (I-LIF): soft reset by the emitted integer, spikes 0..D.

    .. math::
        U[0] = I[0],\quad U[t] = (U[t-1] - S[t-1])\,\beta + I[t],\quad
        S[t] = \mathrm{round}(\mathrm{clamp}(U[t], 0, D))

    Rounding is half to even (the official ``torch.round``); the reset subtracts the emitted
    integer, so a membrane above D keeps its excess. At T = 1 the neuron is stateless. The
    reset term is detached from the graph, as in the official ``mem_update``
    (``(mem_old - spike.detach()) * decay + x[t]``), so gradients flow only through the leak.

    Args:
        decay: β, the leak applied after the reset (official: 0.25).
        levels: D, the largest integer emitted per step (official: 4).
    """

    def __init__(self, decay: float = 0.25, levels: int = 4) -> None:
        super().__init__()
        self.decay = float(decay)
        self.levels = int(levels)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        u = current[0]
        s = integer_spike_fn(u, self.levels)
        out = [s]
        for t in range(1, current.shape[0]):
            u = (u - s.detach()) * self.decay + current[t]
            s = integer_spike_fn(u, self.levels)
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, levels={self.levels}"


class SiLUNeuron(nn.Module):
    r"""The official ``mem_update(act=True)``: a leaky unit whose output is ``SiLU(m)``, not a spike.

    Official checkpoints run it with an in-place SiLU, which overwrites the membrane with its
    own output, so the recurrence really computed is (``inplace=True``, the default)

    .. math:: m[t] = \tau\,s[t-1]\,(1 - s[t-1]) + x[t],\quad s[t] = \mathrm{SiLU}(m[t])

    and with ``inplace=False`` it is :math:`m[t] = \tau\,m[t-1]\,(1 - s[t-1]) + x[t]`.
    """

    def __init__(self, tau: float = 0.25, inplace: bool = True) -> None:
        super().__init__()
        self.tau = float(tau)
        self.inplace = bool(inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[0]
        s = F.silu(m)
        out = [s]
        for t in range(1, x.shape[0]):
            prev = s if self.inplace else m
            m = prev * self.tau * (1.0 - s.detach()) + x[t]
            s = F.silu(m)
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, inplace={self.inplace}"
