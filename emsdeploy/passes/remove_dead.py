"""Remove nodes whose values reach no graph output.

Pre: any graph. Post: every node is the Input or an ancestor of an output.
"""

from __future__ import annotations

from ..ir import Graph, Input

__all__ = ["remove_dead"]


def remove_dead(graph: Graph) -> Graph:
    g = graph.copy()
    live: set[str] = set()
    stack = list(g.outputs)
    while stack:
        name = stack.pop()
        if name in live:
            continue
        live.add(name)
        stack.extend(g[name].inputs)
    dead = [n.name for n in g if n.name not in live and not isinstance(n.op, Input)]
    if dead:
        g.remove(dead)
    return g.validate()
