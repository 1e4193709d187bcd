"""Record every neuron's output during a forward pass, keyed by module path.

Used to compare the PyTorch model with the IR simulators and reference fixtures; the
recording is removed when the ``with`` block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .neurons import LIF, IntegerLIF, SiLUNeuron

__all__ = ["record_neurons"]


@contextmanager
def record_neurons(
    model: nn.Module,
    kinds: tuple[type[nn.Module], ...] = (LIF, IntegerLIF, SiLUNeuron),
    inputs: dict[str, torch.Tensor] | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield a dict that fills with ``{module path: output [T, B, ...]}`` of each neuron module.

    If ``inputs`` is a dict, it fills with each neuron's input current ``[T, B, ...]`` too.
    """
    records: dict[str, torch.Tensor] = {}
    handles = []

    def hook(_m, args, out, name):
        records[name] = out.detach()
        if inputs is not None:
            inputs[name] = args[0].detach()

    for name, module in model.named_modules():
        if isinstance(module, kinds):
            handles.append(module.register_forward_hook(lambda m, a, o, name=name: hook(m, a, o, name)))
    try:
        yield records
    finally:
        for h in handles:
            h.remove()
