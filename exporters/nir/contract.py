"""What an emsdeploy NIR file promises beyond NIR itself: node names and graph metadata.

NIR leaves time, discretisation and host-side work undeclared, so the graph metadata states
them. Plain facts are strings and numbers; the structured lists (host-side ops, IR outputs,
class names) are JSON strings, which every HDF5 reader can open.

Node names (see docs/nir.md):

* a NIR node named after an IR node computes that node's value (``model.1.residual_function.0``
  is its LIF); a spike max-pool ``Y`` is ``Y.sum`` (SumPool2d) then ``Y`` (Threshold);
* an IR conv reading a concatenation becomes one conv per channel range, ``Y.ch<lo>-<hi>``
  (its kernel's input channels ``lo:hi``), all feeding ``Y``'s readers;
* ``X.ch<lo>-<hi>`` with a 1×1 identity kernel places a value into channels ``lo:hi`` of the
  concatenation ``X`` where a reader needs the whole tensor;
* ``input`` (NIR ``Input``) is the network input; an ``Input`` named after a host-side IR node
  ``X`` carries ``X``'s value back into the graph;
* ``X.in`` (NIR ``Output``) carries what host-side node ``X`` reads (the sum of its edges);
  ``Y.out`` exports an IR graph output ``Y`` computed inside the graph.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "HOST_BY_DESIGN",
    "HostOp",
    "host_ops_from_json",
    "host_ops_to_json",
    "jsonable",
    "meta_str",
]

FORMAT = "emsdeploy.nir"
FORMAT_VERSION = 1

# Ops that run on the host whatever the target: they act once, after the last step.
HOST_BY_DESIGN = {
    "Readout": "mean over the T steps of its input, after the last step (host-side by design)",
    "Decode": "YOLOv5 box decoding of the readouts (host-side by design)",
    "DFLDecode": "anchor-free DFL box decoding of the readouts (host-side by design)",
}


@dataclass
class HostOp:
    """One IR node that runs on the host, and how it is wired to the NIR graph.

    Attributes:
        node: the IR node name.
        op: its IR op type; ``params``: its op fields (arrays as nested lists).
        input_kinds: kinds of its IR inputs (spike/current/analog).
        cut: True if NIR 1.0 cannot express it exactly; False if host-side by design.
        reason: why it runs on the host.
        reads: one entry per IR input, in order: ``{"ir": name, "nir_output": name or None}``.
            A ``nir_output`` is the NIR ``Output`` carrying that input (several inputs of a
            summing op share one); ``None`` means a host value (another host op, or the input).
        nir_input: the NIR ``Input`` node that carries this node's value back in, or None.
        summing: True if the op sums its inputs (LIF, SiLUNeuron, Add).
    """

    node: str
    op: str
    params: dict[str, Any]
    input_kinds: list[str]
    cut: bool
    reason: str
    reads: list[dict[str, Any]] = field(default_factory=list)
    nir_input: str | None = None
    summing: bool = False


def jsonable(value: Any) -> Any:
    """Op fields as JSON values: arrays and tuples become lists (float64 values survive exactly)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def host_ops_to_json(ops: list[HostOp]) -> str:
    return json.dumps([asdict(h) for h in ops])


def host_ops_from_json(text: str) -> list[HostOp]:
    return [HostOp(**d) for d in json.loads(text)]


def meta_str(value: Any) -> str | None:
    """A metadata value read back by ``nir.read`` (bytes, numpy scalars) as ``str``; None stays None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str) else str(value)
