"""IR primitives, one small frozen dataclass each; :data:`OPS` is the registry by type name."""

from .base import Op, Shape
from .io import DECODES, Decode, DFLDecode, Input, Readout
from .loihi import (
    FixedMaxPool,
    FixedSiLU,
    GradedRelay,
    HostConv,
    HostSparse,
    LoihiIntegerLIF,
    LoihiLIF,
    LoihiReadout,
    SynConv,
    SynSparse,
)
from .neuron import LIF, IntegerLIF, SiLUNeuron
from .shape import Add, Concat, MaxPool2d, Upsample
from .synapse import Affine, Conv2d

# The closed op vocabulary. Serialization, simulators and exporters look ops up here.
OPS: dict[str, type[Op]] = {
    cls.__name__: cls
    for cls in (
        Input,
        Conv2d,
        Affine,
        Add,
        Concat,
        MaxPool2d,
        Upsample,
        LIF,
        IntegerLIF,
        SiLUNeuron,
        Readout,
        Decode,
        DFLDecode,
    )
}
# Loihi fixed point (the quantize pass's output; see loihi.py).
OPS.update(
    {
        cls.__name__: cls
        for cls in (
            LoihiLIF,
            LoihiReadout,
            LoihiIntegerLIF,
            FixedMaxPool,
            FixedSiLU,
            GradedRelay,
            SynConv,
            SynSparse,
            HostConv,
            HostSparse,
        )
    }
)

__all__ = [
    "DECODES",
    "LIF",
    "OPS",
    "Add",
    "Affine",
    "Concat",
    "Conv2d",
    "DFLDecode",
    "Decode",
    "Input",
    "IntegerLIF",
    "MaxPool2d",
    "Op",
    "Readout",
    "Shape",
    "SiLUNeuron",
    "Upsample",
]
