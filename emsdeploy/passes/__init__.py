"""Graph passes: pure functions ``Graph -> Graph``, one per file; they never mutate their input."""

from .align_delays import align_delays
from .flatten_fanin import flatten_fanin
from .fold_affine import fold_affine
from .partition import partition
from .pipelines import PIPELINES, run_pipeline
from .quantize import QuantizeOptions, quantize
from .remove_dead import remove_dead

__all__ = [
    "PIPELINES",
    "QuantizeOptions",
    "align_delays",
    "flatten_fanin",
    "fold_affine",
    "partition",
    "quantize",
    "remove_dead",
    "run_pipeline",
]
