"""The fixed-point ONNX level of verify: ref-fixed vs the integer stepwise graph, bit for bit.

Every population (spikes, graded values) at every one of the ``T + latency`` steps and every
readout's final integer state; integer, so nothing is excused. The graph is ``--onnx`` when it
is a fixed-point export, else a fresh export of the same lowering the Lava exporter uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..ir import Graph
from ..ir.runtime import Trace

__all__ = ["OnnxFixedLevel", "is_fixed_model"]


def is_fixed_model(path: Path) -> bool:
    """Whether ``path`` is a fixed-point stepwise ONNX graph (its metadata says so)."""
    from ..exporters.onnx.fixed import FIXED_FORMAT
    from ..exporters.onnx.fixed_runtime import read_format

    return read_format(path) == FIXED_FORMAT


class OnnxFixedLevel:
    """``ref_fixed``: the lava level's simulator of the same default lowering, when verify has
    one (then the graph is lowered once, and :meth:`run` is handed that level's run)."""

    def __init__(self, graph: Graph, onnx_model: Path | None, workdir: Path, ref_fixed: Any = None) -> None:
        from ..exporters.onnx.fixed import export_fixed_onnx, fixed_graph
        from ..exporters.onnx.fixed_runtime import FixedSession
        from ..simulators import RefFixed
        from .chain import _population_names

        self.available = True
        self.qgraph = ref_fixed.graph if ref_fixed is not None else fixed_graph(graph)
        path = onnx_model
        if path is None:
            path = workdir / "model-fixed.onnx"
            export_fixed_onnx(self.qgraph, path, record=True)
        self.session = FixedSession(path, threads=1)
        self.ref_fixed = ref_fixed if ref_fixed is not None else RefFixed(self.qgraph)
        self.pops = [n.name for n in self.qgraph if n.name in _population_names(self.qgraph)]

    def run(self, x: torch.Tensor, T: int | None, fixed: Trace | None = None) -> tuple[Trace, Trace]:
        """``fixed``: ref-fixed's raw run of this sample, when the chain already has it."""
        from .chain import _raw_view

        lava = self.session.timing == "lava"
        if fixed is None:
            fixed = self.ref_fixed.run(x, T, record="all", raw=lava)
        got = self.session.run(x, T, record="all")
        if lava:  # every step of Lava's run, invalid ones included
            return _raw_view(fixed, self.pops), _raw_view(got, self.pops)
        return _valid_view(fixed, self.pops), _valid_view(got, self.pops)


def _valid_view(trace: Trace, pops: list[str]) -> Trace:
    """Like ``chain._raw_view`` over the T valid steps: spikes or graded values of every
    population at every valid step, and each readout's integer state after the last one."""
    from .chain import numpy_int

    records: dict[str, dict[str, Any]] = {}
    for name in pops:
        rec = trace.records.get(name, {})
        if "s" in rec or "y" in rec:
            records[name] = {"s": torch.as_tensor(numpy_int(rec["s" if "s" in rec else "y"]))}
        elif "v" in rec:
            records[name] = {"s": torch.as_tensor(numpy_int(rec["v"]))[None], "t0": trace.time_steps - 1}
    outputs = {k: torch.as_tensor(numpy_int(v)) for k, v in trace.outputs.items() if "decode" not in k}
    return Trace(outputs, records, trace.time_steps)
