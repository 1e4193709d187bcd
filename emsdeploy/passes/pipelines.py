"""Named pass pipelines (ordered lists of passes), run with optional validation after each."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import PassError
from ..ir import Graph
from ..targets import load_target
from .align_delays import align_delays
from .flatten_fanin import flatten_fanin
from .fold_affine import fold_affine
from .partition import partition
from .quantize import quantize
from .remove_dead import remove_dead

__all__ = ["PIPELINES", "run_pipeline"]

Pass = Callable[[Graph], Graph]


def partition_lava(graph: Graph) -> Graph:
    """partition for the lava target, custom ops as custom processes."""
    return partition(graph, load_target("lava"))


PIPELINES: dict[str, list[Pass]] = {
    # What every backend wants first: BN folded into its conv, sums as fan-in, nothing dead.
    "simplify": [fold_affine, flatten_fanin, remove_dead],
    # Loihi fixed point with Lava's timing (DESIGN.md §8), default quantization options.
    "lava": [fold_affine, flatten_fanin, remove_dead, partition_lava, quantize, align_delays],
}


def run_pipeline(graph: Graph, passes: str | Sequence[Pass], verify_each: bool = True) -> Graph:
    """Apply ``passes`` (a pipeline name or a list) in order; validate after each when asked."""
    if isinstance(passes, str):
        if passes not in PIPELINES:
            raise PassError(f"unknown pipeline {passes!r}; pipelines: {', '.join(PIPELINES)}")
        passes = PIPELINES[passes]
    for p in passes:
        graph = p(graph)
        if verify_each:
            try:
                graph.validate()
            except Exception as e:
                raise PassError(f"after pass {getattr(p, '__name__', p)}: {e}") from e
    return graph
