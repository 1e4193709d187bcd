"""Float semantics of each IR op as a pure step function (Norse style).

A kernel is built once per node (``make(op, dtype)``) and called every step as
``step(inputs_at_t, state) -> (output_at_t, state)``. Readout and the decodings are
``timeless``: Readout accumulates during the steps and ``finish`` turns the sum into the mean;
``Decode`` and ``DFLDecode`` run once on the readouts (:func:`emsdeploy.ir.runtime.decode_boxes`).
The same equations are lowered to ONNX and quantised for Lava.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from emsdeploy.errors import SimulationError
from emsdeploy.ir import (
    DECODES,
    LIF,
    Add,
    Affine,
    Concat,
    Conv2d,
    Input,
    IntegerLIF,
    MaxPool2d,
    Op,
    Readout,
    SiLUNeuron,
    Upsample,
)

__all__ = ["KERNELS", "Kernel", "make_kernel"]

State = Any
Step = Callable[[Sequence[torch.Tensor], State], tuple[torch.Tensor, State]]


class Kernel:
    """A node's float implementation: ``step`` per time step, ``finish`` after the last one."""

    def __init__(self, step: Step, finish: Callable[[State, int], torch.Tensor] | None = None, records_u: bool = False):
        self.step, self.finish, self.records_u = step, finish, records_u


def _t(a, dtype) -> torch.Tensor | None:
    return None if a is None else torch.tensor(a, dtype=dtype)


def _conv(op: Conv2d, dtype) -> Kernel:
    w, b = _t(op.weight, dtype), _t(op.bias, dtype)

    def step(xs, state):
        return F.conv2d(xs[0], w, b, op.stride, op.padding, op.dilation, op.groups), state

    return Kernel(step)


def _affine(op: Affine, dtype) -> Kernel:
    a, b = torch.tensor(op.scale, dtype=dtype).view(1, -1, 1, 1), torch.tensor(op.shift, dtype=dtype).view(1, -1, 1, 1)
    return Kernel(lambda xs, s: (xs[0] * a + b, s))


def _sum(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x  # left to right: the order the model adds its branches
    return out


def _lif(op: LIF, dtype) -> Kernel:
    tau, v_th = op.tau, op.v_th

    def step(xs, state):
        current = _sum(xs)
        if state is None:
            u = current  # U[0] = I[0]
        else:
            u_prev, s_prev = state
            u = u_prev * tau * (1.0 - s_prev) + current
        s = (u > v_th).to(u.dtype)
        return s, (u, s)

    return Kernel(step, records_u=True)


def _integer_lif(op: IntegerLIF, dtype) -> Kernel:
    decay, levels = op.decay, op.levels

    def step(xs, state):
        current = _sum(xs)
        if state is None:
            u = current  # U[0] = I[0]
        else:
            u_prev, s_prev = state
            u = (u_prev - s_prev) * decay + current  # the official order: reset, then leak
        s = torch.round(torch.clamp(u, 0, levels))  # round half to even, as torch.round
        return s, (u, s)

    return Kernel(step, records_u=True)


def _silu(op: SiLUNeuron, dtype) -> Kernel:
    tau, inplace = op.tau, op.inplace

    def step(xs, state):
        current = _sum(xs)
        if state is None:
            m = current
        else:
            m_prev, s_prev = state
            m = (s_prev if inplace else m_prev) * tau * (1.0 - s_prev) + current
        s = F.silu(m)
        return s, (m, s)

    return Kernel(step)


def _readout(op: Readout, dtype) -> Kernel:
    def step(xs, state):
        total = xs[0].clone() if state is None else state + xs[0]
        return total, total

    return Kernel(step, finish=lambda total, t: total / t)


def _stateless(fn: Callable[[Any], Callable[[Sequence[torch.Tensor]], torch.Tensor]]):
    def make(op, dtype) -> Kernel:
        f = fn(op)
        return Kernel(lambda xs, s: (f(xs), s))

    return make


KERNELS: dict[type[Op], Callable[[Any, torch.dtype], Kernel]] = {
    Conv2d: _conv,
    Affine: _affine,
    LIF: _lif,
    IntegerLIF: _integer_lif,
    SiLUNeuron: _silu,
    Readout: _readout,
    Add: _stateless(lambda op: _sum),
    Concat: _stateless(lambda op: lambda xs: torch.cat(list(xs), 1)),
    MaxPool2d: _stateless(lambda op: lambda xs: F.max_pool2d(xs[0], op.kernel, op.stride, op.padding)),
    Upsample: _stateless(lambda op: lambda xs: F.interpolate(xs[0], scale_factor=op.scale, mode="nearest")),
}


def make_kernel(op: Op, dtype: torch.dtype) -> Kernel:
    if isinstance(op, (Input, *DECODES)):
        raise SimulationError(f"{op.type_name} is handled by the simulator itself")
    try:
        return KERNELS[type(op)](op, dtype)
    except KeyError:
        raise SimulationError(
            f"no float kernel for {op.type_name}; kernels: {', '.join(k.__name__ for k in KERNELS)}"
        ) from None
