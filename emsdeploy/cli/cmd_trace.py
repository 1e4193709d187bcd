"""``emsdeploy trace``: checkpoint -> IR file (.emsir)."""

from __future__ import annotations

import click

from .options import encoding_option


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="IR file to write (.emsir).")
@click.option("--input-size", default=None, help="H or HxW (default: the checkpoint's training size).")
@click.option("--time-steps", "-T", type=click.IntRange(min=1), default=None, help="Default T stored in the IR.")
@click.option("--simplify", is_flag=True, help="Fold tdBN into convs and flatten sums into fan-in before writing.")
@encoding_option
def trace(checkpoint, output, input_size, time_steps, simplify, encoding) -> None:
    """Trace CHECKPOINT (ours or official) into the spiking graph IR and write it to -o."""
    import time

    from ..ir import LIF, IntegerLIF, write_ir
    from ..passes import run_flow
    from ..pipeline import load_graph, parse_size

    t0 = time.perf_counter()
    loaded = load_graph(checkpoint, parse_size(input_size), time_steps, encoding)
    graph = run_flow(loaded.graph, "simplify") if simplify else loaded.graph
    elapsed = time.perf_counter() - t0
    write_ir(graph, output)
    click.echo(
        f"traced {checkpoint} in {elapsed:.2f} s: {len(graph)} nodes, {len(graph.of_type(LIF))} LIF populations, "
        + (f"{len(graph.of_type(IntegerLIF))} I-LIF populations, " if graph.of_type(IntegerLIF) else "")
        + f"input {graph.input_node().op.shape}, T = {graph.time_steps}, {graph.encoding} encoding"
    )
    click.echo(f"wrote {output}")
