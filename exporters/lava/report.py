"""The mapping report: which Lava process implements each part of the network, at what cost.

Per Lava process: its class, whether it is a standard lava-nc process, a custom
(simulation-only) process or host code, the IR nodes it implements, neurons, synapses
(connections with a non-zero weight), weight memory (bytes of distinct weight mantissas plus,
for sparse matrices, 4-byte column indices) and latency (the step, counted from the input, at
which its output is valid; for a synapse group, when it delivers). Per IR node of the float
graph: where it runs and which processes carry it. A network with integer spikes (SpikeYOLO's
I-LIF) also gets ``integer_spikes``: for each spike mode (graded, spike-driven) the sub-steps,
the Lava time steps of one inference and the most messages it can send (exact counts need
spikes: ``emsdeploy fit`` runs an inference).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from emsdeploy.ir import Graph, Input
from emsdeploy.ir.ops import loihi

from .dag import integer_levels, lava_steps, message_bits

__all__ = ["format_mapping", "integer_spikes_line", "integer_spikes_report", "mapping_report"]

_CLASS = {
    loihi.LoihiLIF: ("LIFReset", "standard"),
    loihi.LoihiReadout: ("LIFReset (integrator)", "standard"),
    loihi.SynConv: ("Conv", "standard"),
    loihi.FixedMaxPool: ("CurrentMaxPool", "custom"),
    loihi.FixedSiLU: ("SiLUFixed", "custom"),
    loihi.LoihiIntegerLIF: ("IntegerLIFFixed", "custom"),
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


def integer_spikes_report(graph: Graph, spike_mode: str = "graded") -> dict[str, Any] | None:
    """The two spike modes of a network with integer spikes, side by side (None without any):
    per mode its sub-steps, Lava time steps per inference (the graph's T) and the most messages
    of one inference (every I-LIF neuron sending at each of its T steps to each reading group:
    one graded message of ceil(log2(D+1)) bits, or up to D binary spikes)."""
    levels = integer_levels(graph)
    if levels is None:
        return None
    users = graph.users()
    T, L = graph.time_steps, int(graph.attrs.get("latency", 0))
    readouts = any(isinstance(n.op, loihi.LoihiReadout) for n in graph)
    neurons = sends = 0
    for n in graph:
        if isinstance(n.op, loihi.LoihiIntegerLIF):
            size = int(np.prod(n.op.in_shape()))
            neurons += size
            sends += size * len(users[n.name])
    modes = {
        "graded": {
            "substeps": 1,
            "lava_steps": lava_steps(T, L, 1, readouts),
            "message": f"one graded spike of {message_bits(levels)} bits (0..{levels})",
            "messages_max": sends * T,
        },
        "spike-driven": {
            "substeps": levels,
            "lava_steps": lava_steps(T, L, levels, readouts),
            "message": f"up to {levels} binary spikes over {levels} sub-steps",
            "messages_max": sends * T * levels,
        },
    }
    return {
        "levels": levels,
        "mode": spike_mode,
        "time_steps": T,
        "latency_steps": L,
        "neurons": neurons,
        "modes": modes,
    }


def integer_spikes_line(info: dict[str, Any]) -> str:
    """One line comparing the two spike modes (the export's summary)."""
    g, s = info["modes"]["graded"], info["modes"]["spike-driven"]
    return (
        f"integer spikes (D = {info['levels']}), exported {info['mode']}: graded {g['lava_steps']} Lava steps per "
        f"inference (T = {info['time_steps']}), at most {g['messages_max']} messages of {message_bits(info['levels'])} "
        f"bits; spike-driven {s['lava_steps']} ({s['substeps']} sub-steps per step), at most {s['messages_max']} "
        "binary spikes"
    )


def mapping_report(graph: Graph, float_graph: Graph | None = None, spike_mode: str = "graded") -> dict[str, Any]:
    """The report of a quantized, delay-aligned graph (and of the float graph it came from);
    ``spike_mode`` is how the export sends integer spikes (relays differ: spike-driven ones sum
    their sub-steps in a custom process)."""
    integer = integer_spikes_report(graph, spike_mode)
    driven = integer is not None and spike_mode == "spike-driven"
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
        if isinstance(op, loihi.POPULATIONS):
            row.update({"neurons": int(np.prod(op.in_shape())), "synapses": 0, "weight_bytes": 0})
            ir_nodes = [n.name]
            if "relay_delay" in n.meta:  # a delay line inserted by align_delays, no IR node of its own
                base = "GradedVec" if isinstance(op, loihi.GradedRelay) else "LIFReset"
                row["class"] = f"{base} (relay, +{n.meta['relay_delay']} steps)"
                ir_nodes = []
            elif isinstance(op, loihi.GradedRelay):
                row["why"] = "carries the current of " + n.name + " as graded spikes (weight-shared readers)"
            if isinstance(op, loihi.GradedRelay) and driven:  # sums the sub-steps of a step first
                row["class"] = row["class"].replace("GradedVec", "RelayAccumulator")
                row["kind"] = "custom"
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
    report: dict[str, Any] = {"processes": procs, "totals": totals, "ir_nodes": nodes}
    if integer is not None:
        report["integer_spikes"] = integer
        if driven:  # a step is D Lava time steps
            totals["run_steps"] = f"{integer['levels']}·(T + {totals['latency_steps']} − 1) + 1"
    return report


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
    if "integer_spikes" in report:
        info = report["integer_spikes"]
        lines.append(integer_spikes_line(info))
        for mode, m in info["modes"].items():
            lines.append(
                f"  {mode:<13} sub-steps {m['substeps']}, {m['lava_steps']} Lava steps per inference, "
                f"at most {m['messages_max']} messages ({m['message']})"
            )
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
