"""``emsdeploy inspect``: a per-layer table of the IR a checkpoint becomes."""

from __future__ import annotations

import json

import click

from .options import encoding_option

WIDE = 110  # columns needed for the shapes column beside the others


def _shape(s) -> str:
    return "×".join(str(v) for v in s)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False), required=False)
@click.option("--input-size", default=None, help="H or HxW (default: the checkpoint's training size).")
@click.option("--raw", is_flag=True, help="Show the graph as traced (BN unfolded, sums as Add nodes).")
@click.option(
    "--target",
    default="lava",
    show_default=True,
    help="Target whose chip/custom/host split to show: lava, onnx, nir (the names `export --target` takes) or a .toml.",
)
@click.option("--custom-to-host", is_flag=True, help="Place ops without a standard chip model on the host.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON: {layers: [...], totals: {...}}.")
@click.option("--support", is_flag=True, help="Print the support matrix (ops x targets) and exit.")
@encoding_option
def inspect(source, input_size, raw, target, custom_to_host, as_json, support, encoding) -> None:
    """Per-layer table of SOURCE (a .pt checkpoint or an .emsir IR file).

    Columns: node (module path), op, input -> output shape (per step, C×H×W), value kind
    (spike/current/analog), parameters, neurons, fan-in (neurons: incoming synapse groups;
    convs: weights per output value), partition on --target. By default the graph is shown
    as deployed: tdBN folded into its conv and membrane sums flattened into neuron fan-in.
    """
    from ..inspection import layer_rows, totals
    from ..passes import partition, run_flow
    from ..pipeline import load_graph, parse_size
    from ..targets import load_target

    if support:
        _print_support(as_json)
        return
    if source is None:
        raise click.UsageError("SOURCE is required (a .pt checkpoint or an .emsir file), unless --support")
    loaded = load_graph(source, parse_size(input_size), encoding=encoding)
    graph = loaded.graph
    if not raw:
        graph = run_flow(graph, "simplify")
    graph = partition(graph, load_target(target), custom_to_host)
    rows = layer_rows(graph)
    tot = totals(graph, rows)
    gen1_mode = loaded.checkpoint.meta.get("gen1_mode") if loaded.checkpoint is not None else None
    if gen1_mode is not None:
        tot["gen1_mode"] = gen1_mode  # how the checkpoint's Gen1 inputs are binned (docs/gen1.md)
    if as_json:
        click.echo(json.dumps({"layers": rows, "totals": tot}, indent=2))
        return
    from ..tables import count_text, name_table, stdout_console

    mode = f", Gen1 mode {gen1_mode}" if gen1_mode else ""
    console = stdout_console()
    wide = console.width >= WIDE  # narrower terminals get the table without the shapes column
    headers = ("node", "op", "in → out", "kind", "params", "neurons", "fan-in", target)
    table = name_table(
        f"{source}: {tot['nodes']} nodes, T = {tot['time_steps']}, {tot['encoding']} encoding{mode}",
        [(c, "right" if c in ("params", "neurons", "fan-in") else "left") for c in headers if wide or c != "in → out"],
        names=[r["node"] for r in rows],
        name_columns=["node"],
        fold_columns=["in → out"],
    )
    for r in rows:
        ins = ", ".join(_shape(s) for s in r["input_shapes"]) or "-"
        shapes = [f"{ins} → {_shape(r['output_shape'])}"] if wide else []
        table.add_row(
            r["node"],
            r["op"],
            *shapes,
            r["kind"],
            count_text(r["parameters"]),
            count_text(r["neurons"]) if r["neurons"] else "",
            "" if r["fan_in"] is None else str(r["fan_in"]),
            r["partition"] or "",
        )
    console.print(table)
    if not wide:
        console.print(f"(shapes: a terminal of {WIDE}+ columns shows them, or --json)", highlight=False)
    split = ", ".join(f"{k} {v}" for k, v in (tot["partition"] or {}).items())
    console.print(
        f"totals: {tot['parameters']:,} parameters{'' if raw else ' (BN folded into the convs, conv chains composed)'}, {tot['neurons']:,} neurons in "
        f"{tot['lif_populations']} LIF populations"
        + (f", {tot['ilif_populations']} I-LIF populations" if tot["ilif_populations"] else "")
        + f", {tot['macs_per_step'] / 1e9:.3f} GMAC per step (dense); "
        f"placement on {target}: {split}"
    )


def _print_support(as_json: bool) -> None:
    from ..ir import OPS
    from ..targets import builtin_targets, load_target

    targets = [load_target(t) for t in builtin_targets()]
    matrix = {
        op: {
            t.name: {k: sorted(table[op]) for k, table in (("chip", t.chip), ("custom", t.custom)) if op in table}
            for t in targets
        }
        for op in OPS
    }
    if as_json:
        click.echo(json.dumps(matrix, indent=2))
        return
    for op, per in matrix.items():
        cells = []
        for t, where in per.items():
            desc = "; ".join(f"{k} ({', '.join(v) or 'no inputs'})" for k, v in where.items()) or "host"
            cells.append(f"{t}: {desc}")
        click.echo(f"{op:<11} " + " | ".join(cells))
