"""Flatten sums of currents into the fan-in of the neurons that read them.

A neuron population sums its inputs (DESIGN.md §6), so ``LIF(Add(a, Add(b, c)))`` is
``LIF(a, b, c)``: each synapse group then connects straight into the population, as Lava
wires several synapse processes into one ``a_in``. Identity shortcuts therefore give a
block's neurons the synapse groups of every earlier block up to the last non-linear op
(fan-in grows with depth).

Pre: any graph. Post: no summing node (LIF, SiLUNeuron, Add) reads an ``Add``; Adds still read
by other ops (pooling, concat, convs of currents, readouts) stay, flattened themselves.
Operand order is kept left to right, so float sums change grouping only.
"""

from __future__ import annotations

from ..ir import LIF, Add, Graph, IntegerLIF, SiLUNeuron
from .remove_dead import remove_dead

__all__ = ["SUMMING_OPS", "flatten_fanin"]

SUMMING_OPS = (LIF, IntegerLIF, SiLUNeuron, Add)


def flatten_fanin(graph: Graph) -> Graph:
    g = graph.copy()
    expanded: dict[str, list[str]] = {}

    def terms(name: str) -> list[str]:
        node = g[name]
        if not isinstance(node.op, Add):
            return [name]
        if name not in expanded:
            expanded[name] = [t for i in node.inputs for t in terms(i)]
        return expanded[name]

    for node in g.nodes:
        if isinstance(node.op, SUMMING_OPS) and any(isinstance(g[i].op, Add) for i in node.inputs):
            flat = [t for i in node.inputs for t in terms(i)]
            g.replace(node.name, inputs=flat, fanin_flattened=True)
    return remove_dead(g)
