"""Align the arrival times of all synapse groups of a quantized graph (DESIGN.md §8).

Every Lava synapse hop delivers one step late and a source wired straight into ``a_in`` adds
nothing, so a population fed by paths of different hop counts would add values from different
time steps. This pass gives every node an explicit latency (the step, counted from the input, at
which its values become valid) and delays the early inputs:

* ``latency(Input) = 0``; a host term adds 0 steps, a chip synapse 1 (plus its delay);
* ``latency(P) = max`` over P's inputs of ``latency(source) + hops``;
* each input gets ``delay_u6 = latency(P) − latency(source) − hops``;
* all readouts share the largest readout latency L, so one run of ``T + L`` steps reads them all
  at its end (each readout integrates exactly its T valid steps after its reset at step L).

Lava's ``Conv`` has no delay. A delayed :class:`SynConv` stays a conv in the IR and the exporter
lowers it to a ``DelaySparse`` with the same integers (the op's docstring states the arithmetic)
unless its unrolled matrix would exceed ``relay_above`` synapses (large inputs): then the
spikes go through a **relay** instead — an identity ``SynSparse`` with delay d − 1 into a LIF
with threshold 0 (it re-emits its input spikes; ``node.meta["relay_delay"] = d``), or, for a
graded source, into a :class:`GradedRelay` (it passes the integers on), which the conv then
reads undelayed. One relay serves every group reading the same source with the same
delay.

Any chip group delayed past ``max_delay`` steps (DelaySparse's 62; ``62 // D`` when the graph has
integer spikes, since a spike-driven export stretches every delay D-fold) reads a relay too,
and a delay beyond one identity hop's reach is a chain of relays, each link at most
``max_delay + 1`` steps (SpikeYOLO-n's neck: L = 100 at 64×64).

Pre: the output of :func:`~emsdeploy.passes.quantize`. Post: the same graph with ``latency`` on
every population, ``delay_u6`` on every input, ``graph.attrs["latency"] = L`` (the largest
population latency if there is no readout), ``graph.attrs["delays_aligned"] = True``, and
``node.meta["latency"]`` on every node.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import numpy as np

from ..errors import PassError
from ..ir import Graph, Input, Kind, Op
from ..ir.ops.loihi import (
    CHIP_SYNAPSES,
    HOST_TERMS,
    POPULATIONS,
    GradedRelay,
    LoihiIntegerLIF,
    LoihiLIF,
    LoihiReadout,
    SynConv,
    SynSparse,
)

__all__ = ["RELAY_ABOVE", "align_delays", "hops"]

RELAY_ABOVE = 1 << 18  # synapses of an unrolled delayed conv above which a relay is cheaper


def hops(op: object) -> int:
    """Synapse hops an input adds: 1 through a chip synapse, 0 for a host term."""
    return 1 if isinstance(op, CHIP_SYNAPSES) else 0


def _latencies(g: Graph) -> dict[str, int]:
    """Arrival step of every node without extra delays; readouts share the largest; a relay
    is as late as its delay says."""
    latency: dict[str, int] = {}
    for node in g:
        op = node.op
        if isinstance(op, Input):
            latency[node.name] = 0
        elif isinstance(op, CHIP_SYNAPSES + HOST_TERMS):
            latency[node.name] = latency[node.inputs[0]] + hops(op)  # arrival without extra delay
        elif isinstance(op, POPULATIONS):
            if "relay_delay" in node.meta:
                latency[node.name] = latency[g[node.inputs[0]].inputs[0]] + int(node.meta["relay_delay"])
            else:
                latency[node.name] = max((latency[i] for i in node.inputs), default=0)
    readouts = [n.name for n in g if isinstance(n.op, LoihiReadout)]
    if readouts:
        common = max(latency[r] for r in readouts)
        for r in readouts:
            latency[r] = common
    return latency


def _unrolled_synapses(op: SynConv, out_shape: tuple[int, ...]) -> int:
    o, i, kh, kw = op.weight_s8.shape
    return int(o * i * kh * kw * out_shape[1] * out_shape[2])


def _insert_relays(g: Graph, latency: dict[str, int], relay_above: int) -> None:
    """Route big delayed conv groups, and groups delayed past DelaySparse's range, through relay
    populations (see the module docstring); a delay beyond one relay's reach is a chain of them."""
    p = g.attrs["loihi"]
    du_max, dv_max = (1 << p["du_bits"]) - 1, (1 << p["dv_bits"]) - 1
    max_delay = int(p["max_delay"])
    levels = [int(n.op.levels) for n in g if isinstance(n.op, LoihiIntegerLIF)]
    if levels:  # a spike-driven export stretches every delay D-fold: keep the same graph exportable both ways
        max_delay //= max(levels)
    shapes = {n: g.shape(n) for n in g.names()}  # before rewiring (the graph is reordered at the end)
    kinds = {n: g.kind(n) for n in g.names()}
    # Relays of one shape share their identity synapse and their zero biases: ops are immutable
    # values, and a copy per relay made these arrays most of a paper-size graph's memory.
    shared: dict[tuple[Any, ...], Op] = {}

    def relay_at(src: str, delay: int, base: str) -> str:
        """A relay of ``base``'s values valid ``delay`` steps after ``src`` (``base`` itself or a
        relay of it), fed by an identity DelaySparse of at most ``max_delay``."""
        name = f"{base}@+{latency[src] + delay - latency[base]}"
        if name in g:
            return name
        if delay - 1 > max_delay:  # too far for one hop: relay from an earlier relay
            src = relay_at(src, delay - (max_delay + 1), base)
            delay = max_delay + 1
        shape = shapes[base]
        n = int(np.prod(shape))
        if ("ident", shape) not in shared:
            shared["ident", shape] = SynSparse(np.ones(n), np.arange(n), np.arange(n + 1), shape, shape, 0)
        ident = shared["ident", shape]
        g.add(f"{name}<-{src}", ident, [src], {"partition": "chip", "source": src, "ir_path": [], "population": name})
        meta: dict[str, object] = {"partition": "chip", "ir_op": "relay", "relay_delay": delay}
        if ("zeros", shape) not in shared:  # a read-only array: every op built on it shares it
            shared["zeros", shape] = LoihiLIF(du_max, dv_max, 0, np.zeros(shape, np.int32), 0, 1.0, 0, 0.0, 0.0)
        zeros = cast(LoihiLIF, shared["zeros", shape]).bias_mant_s13
        if kinds[base] == Kind.SPIKE:
            pop: Op = LoihiLIF(du_max, dv_max, 0, zeros, 0, 1.0, 0, 0.0, 0.0)
        else:  # graded values (integer spikes too): a GradedVec passes them on unchanged
            bound = int(g[base].meta.get("out_bound", 0))
            scale = float(getattr(g[base].op, "scale_out", getattr(g[base].op, "scale", 1.0)))
            pop = GradedRelay(zeros, scale, 0, bound)
            meta["out_bound"] = bound
        g.add(name, pop, [f"{name}<-{src}"], meta)
        latency[f"{name}<-{src}"] = latency[src] + 1
        latency[name] = latency[src] + delay
        return name

    for node in list(g):
        if not isinstance(node.op, POPULATIONS):
            continue
        for i in node.inputs:
            op = g[i].op
            delay = latency[node.name] - latency[i]
            big = isinstance(op, SynConv) and delay >= 1 and _unrolled_synapses(op, shapes[i]) > relay_above
            if not big and not (isinstance(op, CHIP_SYNAPSES) and delay > max_delay):
                continue
            src = g[i].inputs[0]
            relay = relay_at(src, delay, src)
            g.replace(i, inputs=[relay])
            latency[i] = latency[relay] + 1
    g.reorder()


def align_delays(graph: Graph, relay_above: int = RELAY_ABOVE) -> Graph:
    """Latencies and delays for a quantized graph (see the module docstring)."""
    if not graph.attrs.get("quantized"):
        raise PassError("align_delays needs a quantized graph (run quantize first)")
    g = graph.copy()
    latency = _latencies(g)
    _insert_relays(g, latency, relay_above)
    latency = _latencies(g)
    readouts = [n.name for n in g if isinstance(n.op, LoihiReadout)]
    for node in g:
        op = node.op
        if isinstance(op, POPULATIONS):
            for i in node.inputs:
                term = g[i].op
                if not isinstance(term, CHIP_SYNAPSES + HOST_TERMS):
                    raise PassError(f"{i}: feeds population {node.name} but is no synapse term (internal error)")
                delay = latency[node.name] - latency[i]
                if delay < 0:
                    raise PassError(f"{i}: arrives after its population {node.name} (internal error)")
                g.replace(i, op=dataclasses.replace(term, delay_u6=delay), latency=latency[node.name])
            g.replace(node.name, op=dataclasses.replace(op, latency=latency[node.name]), latency=latency[node.name])
        elif isinstance(op, Input):
            g.replace(node.name, latency=0)
    g.attrs["latency"] = int(
        max(
            (latency[r] for r in readouts),
            default=max((latency[n.name] for n in g if isinstance(n.op, POPULATIONS)), default=0),
        )
    )
    g.attrs["delays_aligned"] = True
    return g.validate()
