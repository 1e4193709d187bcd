"""Per-layer facts about an IR graph, for ``emsdeploy inspect`` (and its ``--json``)."""

from __future__ import annotations

import math
from typing import Any

from .ir import LIF, Conv2d, Graph, IntegerLIF, SiLUNeuron

__all__ = ["layer_rows", "totals"]

NEURON_OPS = (LIF, IntegerLIF, SiLUNeuron)


def _fan_in(graph: Graph, name: str) -> int | None:
    """Neurons: incoming synapse groups. Convs: weights per output value (C_in/groups · kH · kW)."""
    op = graph[name].op
    if isinstance(op, NEURON_OPS):
        return len(graph[name].inputs)
    if isinstance(op, Conv2d):
        return int(op.weight.shape[1] * op.weight.shape[2] * op.weight.shape[3])
    return None


def layer_rows(graph: Graph) -> list[dict[str, Any]]:
    rows = []
    for node in graph:
        out = graph.shape(node.name)
        op = node.op
        macs = 0
        if isinstance(op, Conv2d):
            macs = math.prod(out) * int(op.weight.shape[1] * op.weight.shape[2] * op.weight.shape[3])
        rows.append(
            {
                "node": node.name,
                "op": op.type_name,
                "inputs": list(node.inputs),
                "input_shapes": [list(graph.shape(i)) for i in node.inputs],
                "input_kinds": sorted({graph.kind(i).value for i in node.inputs}),
                "output_shape": list(out),
                "kind": graph.kind(node.name).value,
                "parameters": op.num_parameters(),
                "neurons": math.prod(out) if isinstance(op, NEURON_OPS) else 0,
                "fan_in": _fan_in(graph, node.name),
                "macs_per_step": macs,
                "partition": node.meta.get("partition"),
            }
        )
    return rows


def totals(graph: Graph, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "nodes": len(rows),
        "parameters": sum(r["parameters"] for r in rows),
        "neurons": sum(r["neurons"] for r in rows),
        "lif_populations": sum(r["op"] == "LIF" for r in rows),
        "ilif_populations": sum(r["op"] == "IntegerLIF" for r in rows),
        "macs_per_step": sum(r["macs_per_step"] for r in rows),
        "time_steps": graph.time_steps,
        "encoding": graph.encoding,
        "input_shape": list(graph.input_node().op.shape),  # type: ignore[attr-defined]
        "partition": {p: sum(r["partition"] == p for r in rows) for p in ("chip", "custom", "host")}
        if any(r["partition"] for r in rows)
        else None,
    }
