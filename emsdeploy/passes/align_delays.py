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

(Lava's ``Conv`` has no delay: the exporter lowers a delayed :class:`SynConv` to a
``DelaySparse`` with the same integers; the op's docstring states the arithmetic.)

Pre: the output of :func:`~emsdeploy.passes.quantize`. Post: the same graph with ``latency`` on
every population, ``delay_u6`` on every input, ``graph.attrs["latency"] = L`` (the largest
population latency if there is no readout), ``graph.attrs["delays_aligned"] = True``, and
``node.meta["latency"]`` on every node.
"""

from __future__ import annotations

import dataclasses

from ..errors import PassError
from ..ir import Graph, Input
from ..ir.ops.loihi import CHIP_SYNAPSES, HOST_TERMS, POPULATIONS, LoihiReadout

__all__ = ["align_delays", "hops"]


def hops(op: object) -> int:
    """Synapse hops an input adds: 1 through a chip synapse, 0 for a host term."""
    return 1 if isinstance(op, CHIP_SYNAPSES) else 0


def align_delays(graph: Graph) -> Graph:
    if not graph.attrs.get("quantized"):
        raise PassError("align_delays needs a quantized graph (run quantize first)")
    g = graph.copy()
    latency: dict[str, int] = {}
    for node in g:
        op = node.op
        if isinstance(op, Input):
            latency[node.name] = 0
        elif isinstance(op, CHIP_SYNAPSES + HOST_TERMS):
            latency[node.name] = latency[node.inputs[0]] + hops(op)  # arrival without extra delay
        elif isinstance(op, POPULATIONS):
            latency[node.name] = max((latency[i] for i in node.inputs), default=0)
    readouts = [n.name for n in g if isinstance(n.op, LoihiReadout)]
    if readouts:
        common = max(latency[r] for r in readouts)
        for r in readouts:
            latency[r] = common
    for node in g:
        op = node.op
        if isinstance(op, POPULATIONS):
            for i in node.inputs:
                term = g[i]
                delay = latency[node.name] - latency[i]
                if delay < 0:
                    raise PassError(f"{i}: arrives after its population {node.name} (internal error)")
                g.replace(i, op=dataclasses.replace(term.op, delay_u6=delay), latency=latency[node.name])
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
