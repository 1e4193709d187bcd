"""A loaded Lava export as a table (``print(net)``), as netx prints its layers.

One row per process: name, kind, where it runs, the IR node it carries (blank when the process
is named after it), and its neuron count (the product of its ``shape`` parameter, where it has
one). Names are never cut.
"""

from __future__ import annotations

import io
import math
from typing import Any

__all__ = ["describe"]


def describe(net: Any) -> str:
    """The table of ``net`` (a :class:`~.network.LavaNetwork` or :class:`~.netx.NetxNetwork`)."""
    from rich.console import Console

    from emsdeploy.tables import count_text, name_table

    dag = net.dag
    kind = type(net).__name__
    title = (
        f"{kind}: {len(dag.procs)} processes, input {tuple(dag.input_shape)} ({dag.encoding}), "
        f"T = {dag.time_steps}, latency {dag.latency} steps"
    )
    if getattr(net, "layers", None):
        title += f"; netx chain of {len(net.layers)} layers in {net.net_path.name}"
    table = name_table(
        title,
        [("process", "left"), ("kind", "left"), ("placement", "left"), ("IR node", "left"), ("neurons", "right")],
        names=[p.name for p in dag.procs],
        name_columns=["process"],
        fold_columns=["IR node"],
    )
    for p in dag.procs:
        shape = p.params.get("shape")
        neurons = math.prod(int(v) for v in shape) if isinstance(shape, (list, tuple)) and shape else None
        ir_node = "" if p.ir_node == p.name else p.ir_node  # most processes carry the node they are named after
        table.add_row(p.name, p.kind, p.placement, ir_node, count_text(neurons) if neurons else "")
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None).print(table)
    return buf.getvalue().rstrip()
