"""The mapping report: which Lava process implements each part of the network, at what cost.

Per Lava process: its class, whether it is a standard lava-nc process, a custom
(simulation-only) process or host code, the IR nodes it implements, neurons, synapses
(connections with a non-zero weight), weight memory (bytes of distinct weight mantissas plus,
for sparse matrices, 4-byte column indices) and latency (the step, counted from the input, at
which its output is valid; for a synapse group, when it delivers). Per IR node of the float
graph: where it runs and which processes carry it.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from emsdeploy.ir import Graph, Input
from emsdeploy.ir.ops import loihi

__all__ = ["format_mapping", "mapping_report"]

_CLASS = {
    loihi.LoihiLIF: ("LIFReset", "standard"),
    loihi.LoihiReadout: ("LIFReset (integrator)", "standard"),
    loihi.SynConv: ("Conv", "standard"),
    loihi.FixedMaxPool: ("CurrentMaxPool", "custom"),
    loihi.FixedSiLU: ("SiLUFixed", "custom"),
    loihi.GradedRelay: ("GradedVec (relay)", "standard"),
    loihi.HostConv: ("RingBuffer <- host conv", "host"),
    loihi.HostSparse: ("RingBuffer <- host matrix", "host"),
}


def _conv_connections(op: loihi.SynConv | loihi.HostConv, graph: Graph, name: str) -> int:
    """Connections with a non-zero weight, counted per kernel tap (no unrolled matrix: at paper
    sizes that matrix is what the weight-shared lowering avoids)."""
    w = op.weight_s8 if isinstance(op, loihi.SynConv) else op.weight_s24
    _, hi, wi = graph.shape(graph[name].inputs[0])
    _, ho, wo = graph.shape(name)
    (sh, sw), (ph, pw), (dh, dw) = op.stride, op.padding, op.dilation
    total = 0
    for ky in range(w.shape[2]):
        iy = np.arange(ho) * sh - ph + ky * dh
        ny = int(np.count_nonzero((iy >= 0) & (iy < hi)))
        for kx in range(w.shape[3]):
            ix = np.arange(wo) * sw - pw + kx * dw
            nx = int(np.count_nonzero((ix >= 0) & (ix < wi)))
            total += int(np.count_nonzero(w[:, :, ky, kx])) * ny * nx
    return total


def mapping_report(graph: Graph, float_graph: Graph | None = None) -> dict[str, Any]:
    """The report of a quantized, delay-aligned graph (and of the float graph it came from)."""
    procs: list[dict[str, Any]] = []
    carried: dict[str, list[str]] = {}
    for n in graph:
        op = n.op
        if isinstance(op, Input) or type(op) not in (*_CLASS, loihi.SynSparse):
            continue
        if isinstance(op, loihi.SynSparse):
            cls, kind = ("DelaySparse" if op.delay_u6 else "Sparse"), "standard"
        elif isinstance(op, loihi.SynConv) and op.delay_u6:
            cls, kind = "DelaySparse (a conv)", "standard"
        else:
            cls, kind = _CLASS[type(op)]
        place = n.meta.get("partition", "chip")
        if kind == "custom" and place == "host":
            kind = "host"
        row: dict[str, Any] = {
            "process": n.name,
            "class": cls,
            "kind": kind,
            "latency": int(n.meta.get("latency", getattr(op, "latency", 0))),
        }
        if isinstance(op, (loihi.LoihiLIF, loihi.LoihiReadout, loihi.FixedMaxPool, loihi.FixedSiLU, loihi.GradedRelay)):
            row.update({"neurons": int(np.prod(op.in_shape())), "synapses": 0, "weight_bytes": 0})
            ir_nodes = [n.name]
            if "relay_delay" in n.meta:  # a delay line inserted by align_delays, no IR node of its own
                base = "GradedVec" if isinstance(op, loihi.GradedRelay) else "LIFReset"
                row["class"] = f"{base} (relay, +{n.meta['relay_delay']} steps)"
                ir_nodes = []
            elif isinstance(op, loihi.GradedRelay):
                row["why"] = "carries the current of " + n.name + " as graded spikes (weight-shared readers)"
        else:  # a synapse group or host term (partition placed nothing else here)
            op = cast(loihi.SynConv | loihi.HostConv | loihi.SynSparse | loihi.HostSparse, op)
            if isinstance(op, (loihi.SynConv, loihi.HostConv)):
                w = op.weight_s8 if isinstance(op, loihi.SynConv) else op.weight_s24
                syn = _conv_connections(op, graph, n.name)
                nbytes = int(np.count_nonzero(w)) * (1 if isinstance(op, loihi.SynConv) else 3)
                if isinstance(op, loihi.SynConv) and op.delay_u6:
                    nbytes = syn * 5  # stored as a sparse matrix: a mantissa and an index per synapse
            else:
                w = op.weight_s8 if isinstance(op, loihi.SynSparse) else op.weight_s24
                syn = int(np.count_nonzero(w))
                nbytes = syn * ((1 if isinstance(op, loihi.SynSparse) else 3) + 4)
            row.update(
                {
                    "neurons": 0,
                    "synapses": syn,
                    "weight_bytes": nbytes,
                    "delay": int(op.delay_u6),
                    "source": n.inputs[0],
                }
            )
            if "form_why" in n.meta:
                row["why"] = n.meta["form_why"]
            ir_nodes = list(n.meta.get("ir_path", []))
        row["ir_nodes"] = ir_nodes
        for i in ir_nodes:
            carried.setdefault(i, []).append(n.name)
        procs.append(row)
    totals: dict[str, Any] = {"processes": len(procs)}
    for kind in ("standard", "custom", "host"):
        rows = [r for r in procs if r["kind"] == kind]
        totals[kind] = {
            "processes": len(rows),
            "neurons": sum(r["neurons"] for r in rows),
            "synapses": sum(r["synapses"] for r in rows),
            "weight_bytes": sum(r["weight_bytes"] for r in rows),
        }
    totals["latency_steps"] = int(graph.attrs.get("latency", 0))
    totals["run_steps"] = f"T + {totals['latency_steps']}"
    nodes = []
    if float_graph is not None:
        for n in float_graph:
            nodes.append(
                {
                    "node": n.name,
                    "op": n.op.type_name,
                    "placement": n.meta.get("partition", ""),
                    "processes": carried.get(n.name, []),
                }
            )
    return {"processes": procs, "totals": totals, "ir_nodes": nodes}


def format_mapping(report: dict[str, Any]) -> str:
    """The mapping report as text; name columns are as wide as their longest name (never cut:
    a cut name can read as another process)."""
    pw = max([len("process"), *(len(r["process"]) for r in report["processes"])])
    cw = max([len("class"), *(len(r["class"]) for r in report["processes"])])
    lines = [
        f"{'process':<{pw}} {'class':<{cw}} {'kind':<8} {'neurons':>8} {'synapses':>9} {'w bytes':>8} {'lat':>4} {'dly':>4} form: why"
    ]
    for r in report["processes"]:
        lines.append(
            f"{r['process']:<{pw}} {r['class']:<{cw}} {r['kind']:<8} {r['neurons']:>8} {r['synapses']:>9} {r['weight_bytes']:>8} {r['latency']:>4} {r.get('delay', ''):>4} {r.get('why', '')}"
        )
    t = report["totals"]
    lines.append("")
    for kind in ("standard", "custom", "host"):
        k = t[kind]
        lines.append(
            f"{kind:<8}: {k['processes']} processes, {k['neurons']} neurons, {k['synapses']} synapses, {k['weight_bytes']} weight bytes"
        )
    lines.append(f"latency: {t['latency_steps']} steps; a run lasts {t['run_steps']} steps")
    if report["ir_nodes"]:
        lines.append("")
        nw = max([len("IR node"), *(len(r["node"]) for r in report["ir_nodes"])])
        lines.append(f"{'IR node':<{nw}} {'op':<11} {'placement':<9} carried by")
        for r in report["ir_nodes"]:
            procs = ", ".join(r["processes"][:4]) + (
                f" (+{len(r['processes']) - 4})" if len(r["processes"]) > 4 else ""
            )
            lines.append(f"{r['node']:<{nw}} {r['op']:<11} {r['placement']:<9} {procs or '-'}")
    return "\n".join(lines)
