"""The counting loop of an energy report over its inputs (an :class:`~emsdeploy.inputs.InputSet`).

With ``--input`` the user's image, folder or ``.npy`` (see :mod:`emsdeploy.inputs`). Without it:
the first samples of the validation split of the synthetic dataset the checkpoint was trained
on (its ``meta["data"]`` recipe), else a deterministic random input. The report says which,
and why when it had to fall back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import InputError
from ..inputs import InputSet, default_inputs, random_inputs, user_inputs
from ..ir import Graph
from ..simulators.sops import SOPCounter, SOPCounts

__all__ = ["DEFAULT_SAMPLES", "InputSet", "default_inputs", "measure", "random_inputs", "user_inputs"]

DEFAULT_SAMPLES = 8


def measure(
    graph: Graph, inputs: InputSet, advance: Callable[[], None] | None = None, dtype: torch.dtype = torch.float32
) -> SOPCounts:
    """Count every sample of ``inputs`` (one at a time: memory stays flat); ``advance`` after each."""
    counter = SOPCounter(graph, dtype)
    for x in inputs.samples():
        counter.run(x)
        if advance is not None:
            advance()
    if counter.samples == 0:
        raise InputError(f"no samples to count in {inputs.description}")
    return counter.counts()
