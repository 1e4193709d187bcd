"""Graph passes: pure functions ``Graph -> Graph``, one per file; they never mutate their input.
Named flows of them (:mod:`.flows`) are what the targets run."""

from .align_delays import align_delays
from .flatten_fanin import flatten_fanin
from .flows import FLOWS, FlowOptions, applied_flows, flow_steps, record_flow, run_flow
from .fold_affine import fold_affine
from .fold_convs import fold_convs
from .partition import partition
from .quantize import QuantizeOptions, quantize
from .remove_dead import remove_dead

__all__ = [
    "FLOWS",
    "FlowOptions",
    "QuantizeOptions",
    "align_delays",
    "applied_flows",
    "flatten_fanin",
    "flow_steps",
    "fold_affine",
    "fold_convs",
    "partition",
    "quantize",
    "record_flow",
    "remove_dead",
    "run_flow",
]
