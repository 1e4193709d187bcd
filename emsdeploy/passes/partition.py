"""Mark every node as running on the chip, in a custom (simulation-only) process, or on the host.

A target is data (:class:`~emsdeploy.targets.Target`): which op types it runs natively for which
input kinds, which it can run only as custom processes, and the rest goes to the host. The
user chooses whether custom-capable ops become custom processes or move to the host.

Pre: a validated graph. Post: ``node.meta["partition"]`` ∈ {"chip", "custom", "host"} for every
node, and ``graph.attrs["target"]`` names the target.
"""

from __future__ import annotations

from ..ir import Graph
from ..targets import Target

__all__ = ["PARTITIONS", "partition"]

PARTITIONS = ("chip", "custom", "host")


def partition(graph: Graph, target: Target, custom_to_host: bool = False) -> Graph:
    """Annotate a copy of ``graph`` for ``target``.

    Args:
        custom_to_host: place ops that have only a custom implementation on the host instead.
    """
    g = graph.copy()
    for node in g:
        kinds = {g.kind(i).value for i in node.inputs}
        where = target.placement(node.op.type_name, kinds)
        if where == "custom" and custom_to_host:
            where = "host"
        g.replace(node.name, partition=where)
    g.attrs["target"] = target.name
    return g
