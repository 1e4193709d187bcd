"""The run contract: what every backend takes and returns (DESIGN.md §1, §7).

A backend runs an IR graph, or what was lowered from one, for T steps:
``run(x, time_steps=None, record=None) -> Trace``. The float and fixed-point reference
simulators, the stepwise ONNX runtimes (float and fixed point), the Lava runner, the PyTorch
level of ``verify`` and verify's integer views all return :class:`Trace`, so any two can be
compared. Backends differ only in how they compute a step; the rest is here, once:

* :class:`Trace` — the result (outputs, per-node records, spike counts, T, timings);
* :data:`RecordSpec`, :func:`select_records`, :func:`record_set` — which nodes to record;
* :func:`graph_steps` / :func:`encoding_steps` — a user input as the input of each step;
* :func:`decode_boxes` / :func:`decode_readouts` / :func:`decode_dfl` — readouts to boxes (YOLOv5, DFL).

The encoding and the box decoding are defined in the model package (:mod:`emsdeploy.models.encoding`,
:mod:`emsdeploy.models.boxes`) because the PyTorch model needs them too and, by DESIGN.md §1,
``models`` imports nothing from the IR; the IR may import ``models``, so they are re-exported here.
Both modules work on numpy arrays and torch tensors alike and import neither, so this module,
like the ONNX runtime that stands on it, loads without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from emsdeploy.models.boxes import decode_dfl, decode_raw, decode_readouts
from emsdeploy.models.encoding import ENCODINGS, EncodingError, encoding_steps

from ..errors import InputError
from .graph import Graph
from .ops import LIF, Decode, DFLDecode, IntegerLIF, SiLUNeuron

__all__ = [
    "ENCODINGS",
    "EncodingError",
    "RecordSpec",
    "Trace",
    "decode_boxes",
    "decode_dfl",
    "decode_raw",
    "decode_readouts",
    "encoding_steps",
    "graph_steps",
    "record_set",
    "select_records",
]

RecordSpec = None | Literal["neurons", "all"] | Collection[str]
"""What to record: nothing (``None``), every neuron (``"neurons"``), every node that has a
value at each step (``"all"``), or these node names."""


@dataclass
class Trace:
    """The result of one run, from any backend.

    Values are torch tensors (the simulators, the PyTorch level) or numpy arrays (onnxruntime,
    Lava); :meth:`to_torch` converts the latter.

    Attributes:
        outputs: graph output name -> value: each readout ``[B, C, H, W]`` (the head averaged over
            T), the decode ``[B, N, nc+5]`` (xywh pixels, objectness, classes); a per-step output
            ``[T, B, ...]``.
        records: node name -> recorded variables. Each backend documents which it records:
            ``"s"`` spikes ``[T, B, *shape]`` (0/1), ``"u"`` a LIF's pre-reset membrane, ``"y"``
            a graded value, ``"v"`` an integer integrator state, ``"s_raw"``/``"y_raw"`` all
            ``T + latency`` steps of a fixed-point run, ``"t0"`` the first step a record covers.
        time_steps: T of this run.
        timings: seconds (and step counts) of the run's phases, where a backend measures them (Lava).
    """

    outputs: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    time_steps: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def spikes(self, name: str) -> Any:
        """The spikes ``[T, B, *shape]`` recorded for node ``name``."""
        return self.records[name]["s"]

    def spike_counts(self) -> dict[str, int]:
        """Spikes emitted by each node that recorded ``"s"`` (all samples, all steps)."""
        return {name: int(np.asarray(_numpy(r["s"])).sum()) for name, r in self.records.items() if "s" in r}

    def to_torch(self, dtype: Any = None) -> Trace:
        """The same result with torch tensors. Boolean spike arrays become 0/1 floats of ``dtype``
        (default float32), as the float simulator records them; other arrays keep their dtype."""
        import torch

        def conv(a: Any) -> Any:
            if isinstance(a, torch.Tensor) or not isinstance(a, np.ndarray):
                return a
            t = torch.from_numpy(np.ascontiguousarray(a))
            return t.to(dtype or torch.float32) if a.dtype == np.bool_ else t

        return Trace(
            {k: conv(v) for k, v in self.outputs.items()},
            {n: {k: conv(v) for k, v in r.items()} for n, r in self.records.items()},
            self.time_steps,
            dict(self.timings),
        )


def select_records(
    spec: RecordSpec,
    *,
    neurons: Iterable[str],
    every: Iterable[str],
    known: Iterable[str] | None = None,
    what: str = "nodes",
    hint: str = "",
) -> list[str]:
    """Resolve a :data:`RecordSpec` against what a backend can record.

    Args:
        neurons: what ``"neurons"`` means here, in order.
        every: what ``"all"`` means here, in order.
        known: the names a list may contain (default: ``every``).
        what, hint: for the error on an unknown name, ``cannot record unknown <what> [...]<hint>``.

    Returns:
        The names, in the backend's order for ``"neurons"``/``"all"``, else in the order given
        (duplicates dropped).
    """
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec == "neurons":
            return list(dict.fromkeys(neurons))
        if spec == "all":
            return list(dict.fromkeys(every))
        raise InputError(f"record {spec!r} unknown; give 'neurons', 'all' or a list of names")
    names = list(dict.fromkeys(spec))
    allowed = set(every if known is None else known)
    unknown = sorted(n for n in names if n not in allowed)
    if unknown:
        raise InputError(f"cannot record unknown {what} {unknown[:5]}{hint}")
    return names


def record_set(graph: Graph, spec: RecordSpec) -> set[str]:
    """The nodes of ``graph`` to record: neurons are LIF, I-LIF and SiLU nodes; ``"all"`` is every node
    with a value at each step (not the timeless readout and decode); any node may be named."""
    return set(
        select_records(
            spec,
            neurons=(n.name for n in graph.of_type(LIF, IntegerLIF, SiLUNeuron)),
            every=(n.name for n in graph if not n.op.timeless),
            known=graph.names(),
        )
    )


def graph_steps(graph: Graph, x: Any, time_steps: int | None = None) -> tuple[int, Callable[[int], Any]]:
    """:func:`encoding_steps` for the graph's input node: ``(T, t -> input [B, C, H, W] at step t)``."""
    op: Any = graph.input_node().op  # an Input
    steps: tuple[int, Callable[[int], Any]] = encoding_steps(x, op.encoding, op.shape, time_steps, graph.time_steps)
    return steps


def decode_boxes(readouts: Sequence[Any], op: Decode | DFLDecode) -> Any:
    """The IR's decoding op on its readouts (numpy or torch): a :class:`~emsdeploy.ir.Decode`
    (YOLOv5, ``[B, na·no, ny, nx]`` -> ``[B, N, nc+5]``) or a :class:`~emsdeploy.ir.DFLDecode`
    (anchor-free, ``[B, 4·reg_max+nc, ny, nx]`` -> ``[B, 4+nc, A]``)."""
    if isinstance(op, DFLDecode):
        return decode_dfl(readouts, op.strides, op.nc, op.reg_max)
    return decode_readouts(readouts, op.anchors, op.strides, op.nc)


def _numpy(a: Any) -> Any:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else a
