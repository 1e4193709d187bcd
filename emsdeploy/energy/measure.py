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
from ..ir import Conv2d, Graph
from ..passes import fold_affine, fold_convs
from ..simulators.sops import SOPCounter, SOPCounts

__all__ = [
    "DEFAULT_SAMPLES",
    "InputSet",
    "counted_graph",
    "default_inputs",
    "measure",
    "random_inputs",
    "user_inputs",
]

DEFAULT_SAMPLES = 8


def counted_graph(graph: Graph) -> Graph:
    """The graph whose operations are counted: as traced, except that chains of convolutions with
    nothing between them (SpikeYOLO's RepConv and SepRepConv with their BN) are counted as the
    one conv the deployed model runs (passes ``fold_affine``, ``fold_convs``; spikes unchanged,
    docs/spikeyolo.md). A graph without such chains (EMS-YOLO) is counted as traced."""
    folded = fold_convs(fold_affine(graph))
    return folded if len(folded.of_type(Conv2d)) < len(graph.of_type(Conv2d)) else graph


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
