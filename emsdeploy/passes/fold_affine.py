"""Fold each Affine (inference tdBN) into the Conv2d that feeds it.

Pre: an ``Affine`` whose input is a ``Conv2d`` read by nothing else.
Post: that pair becomes one ``Conv2d`` (named after the conv) with
``W' = a·W`` and ``b' = a·b + c`` per output channel, computed in float64;
the Affine's readers read the conv. Other Affines (after an Add or Concat) are kept. A chain
conv → Affine → Affine (SpikeYOLO's RepConv BN followed by its block's BN) folds whole: the
pass repeats until no pair is left.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..ir import Affine, Conv2d, Graph

__all__ = ["fold_affine"]


def fold_affine(graph: Graph) -> Graph:
    g = _fold_once(graph)
    while g is not graph:
        graph, g = g, _fold_once(g)
    return g


def _fold_once(graph: Graph) -> Graph:
    """One round: every (conv, Affine) pair present now; ``graph`` itself when there is none."""
    g = graph.copy()
    users = g.users()
    renamed: dict[str, str] = {}
    for node in g.nodes:
        if not isinstance(node.op, Affine) or len(node.inputs) != 1:
            continue
        src = g[node.inputs[0]]
        if not isinstance(src.op, Conv2d) or len(users[src.name]) != 1 or src.name in g.outputs:
            continue
        conv, aff = src.op, node.op
        scale = aff.scale.astype(np.float64)
        weight = conv.weight.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
        bias = aff.shift.astype(np.float64) + (0.0 if conv.bias is None else conv.bias.astype(np.float64) * scale)
        folded = dataclasses.replace(conv, weight=weight, bias=bias)
        g.replace(src.name, op=folded, folded=[*src.meta.get("folded", []), node.name])
        renamed[node.name] = src.name
    if not renamed:
        return graph
    for node in g.nodes:
        if any(i in renamed for i in node.inputs):
            g.replace(node.name, inputs=[renamed.get(i, i) for i in node.inputs])
    g.outputs = [renamed.get(o, o) for o in g.outputs]
    g.remove(renamed)
    return g.validate()
