"""The spiking graph IR: typed ops, the graph, value kinds, and the file format.

This is the ground floor: it imports nothing from the tracer, passes, exporters, simulators
or the CLI.
"""

from .graph import Graph, Node
from .kinds import Kind
from .ops import (
    DECODES,
    LIF,
    OPS,
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    DFLDecode,
    Input,
    IntegerLIF,
    MaxPool2d,
    Op,
    Readout,
    SiLUNeuron,
    Upsample,
)
from .serialize import SCHEMA_VERSION, read_ir, write_ir

__all__ = [
    "DECODES",
    "LIF",
    "OPS",
    "SCHEMA_VERSION",
    "Add",
    "Affine",
    "Concat",
    "Conv2d",
    "DFLDecode",
    "Decode",
    "Graph",
    "Input",
    "IntegerLIF",
    "Kind",
    "MaxPool2d",
    "Node",
    "Op",
    "Readout",
    "SiLUNeuron",
    "Upsample",
    "read_ir",
    "write_ir",
]
