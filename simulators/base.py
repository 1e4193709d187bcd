"""What every backend shares: input encoding, the run result (:class:`Trace`), the interface.

Backends (the float and fixed-point reference simulators, the ONNX runtime, Lava) all answer
``run(x, time_steps=None, record=None) -> Trace``, so verification can compare any two.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

import torch

from emsdeploy.errors import InputError
from emsdeploy.ir import LIF, Graph, SiLUNeuron

__all__ = ["Backend", "RecordSpec", "Trace", "record_set", "step_inputs"]

RecordSpec = None | Literal["neurons", "all"] | Collection[str]


@dataclass
class Trace:
    """The result of one run.

    Attributes:
        outputs: graph output name -> value; readouts ``[B, C, H, W]``, decode ``[B, N, nc+5]``.
        records: node name -> recorded variables, each ``[T, B, *shape]``: ``"s"`` spikes and
            ``"u"`` the pre-reset membrane for LIF nodes, ``"y"`` the value for other nodes.
        time_steps: T of this run.
    """

    outputs: dict[str, torch.Tensor]
    records: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    time_steps: int = 0

    def spikes(self, name: str) -> torch.Tensor:
        return self.records[name]["s"]


class Backend(abc.ABC):
    """A way to run an IR graph for T steps."""

    name: str = "backend"

    @abc.abstractmethod
    def run(self, x: torch.Tensor, time_steps: int | None = None, record: RecordSpec = None) -> Trace:
        """Run on ``x`` (direct: ``[B, C, H, W]``; frames: ``[B, T, C, H, W]``)."""


def record_set(graph: Graph, record: RecordSpec) -> set[str]:
    if record is None:
        return set()
    if record == "neurons":
        return {n.name for n in graph.of_type(LIF, SiLUNeuron)}
    if record == "all":
        return {n.name for n in graph if not n.op.timeless}
    names = set(record)
    unknown = names - set(graph.names())
    if unknown:
        raise InputError(f"cannot record unknown nodes {sorted(unknown)[:5]}")
    return names


def step_inputs(graph: Graph, x: torch.Tensor, time_steps: int | None) -> tuple[int, Callable[[int], torch.Tensor]]:
    """Check ``x`` against the graph's input and return ``(T, t -> input at step t)``."""
    node = graph.input_node()
    shape, encoding = node.op.shape, node.op.encoding  # type: ignore[attr-defined]
    if not isinstance(x, torch.Tensor):
        raise InputError(f"input must be a tensor, got {type(x).__name__}")
    if encoding == "direct":
        if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
            raise InputError(f"direct encoding expects images [B, {', '.join(map(str, shape))}], got {tuple(x.shape)}")
        t = int(time_steps or graph.time_steps)
        if t < 1:
            raise InputError(f"time_steps must be >= 1, got {t}")
        return t, lambda _t: x
    if x.dim() != 5 or tuple(x.shape[2:]) != tuple(shape):
        raise InputError(f"frames encoding expects [B, T, {', '.join(map(str, shape))}], got {tuple(x.shape)}")
    if time_steps is not None and time_steps != x.shape[1]:
        raise InputError(f"input has {x.shape[1]} frames but time_steps={time_steps}")
    return int(x.shape[1]), lambda t: x[:, t]
