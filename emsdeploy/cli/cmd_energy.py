"""``emsdeploy energy``: exact synaptic operations and energy per frame, beside the papers' formula."""

from __future__ import annotations

import json
import sys

import click

from ..distributed.jobs import sweep_options
from ..energy.measure import DEFAULT_SAMPLES
from .options import encoding_option, gen1_mode_option, size_and_steps_options


@click.command()
@click.argument("source", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--input",
    "input_spec",
    default=None,
    type=click.Path(),
    help="An image, a folder of images, a .npy of [B,3,H,W] images / [B,T,C,H,W] frames, or Gen1 *_td.dat data. "
    f"Default: the first {DEFAULT_SAMPLES} samples of the synthetic validation split named in the "
    f"checkpoint's meta, else {DEFAULT_SAMPLES} deterministic random inputs (the report says which).",
)
@click.option(
    "--profile",
    default="45nm-fp32",
    show_default=True,
    help="Energy profile: a shipped name (45nm-fp32, 45nm-int8, 45nm-fp32-memory, loihi) or a .toml file.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use at most this many input samples.")
@click.option("--json", "as_json", is_flag=True, help="Print only the report as JSON.")
@click.option(
    "--save-json", type=click.Path(dir_okay=False), default=None, help="Also write the JSON report to this file."
)
@click.option(
    "--plot", type=click.Path(dir_okay=False), default=None, help="Write energy and firing rate per layer (PNG)."
)
@click.option(
    "--integer-mode",
    type=click.Choice(["spike-driven", "graded"]),
    default="spike-driven",
    show_default=True,
    help="How synapse groups fed by integer spikes (SpikeYOLO's I-LIF) are priced: spike-driven (an integer s "
    "is s accumulates) or graded (one event per nonzero integer). Both counts are in the report.",
)
@size_and_steps_options
@gen1_mode_option
@encoding_option
@sweep_options
def energy(
    source: str | None,
    input_spec: str | None,
    profile: str,
    limit: int | None,
    as_json: bool,
    save_json: str | None,
    plot: str | None,
    integer_mode: str,
    input_size: str | None,
    time_steps: int | None,
    gen1_mode: str | None,
    encoding: str | None,
    results: str | None,
    resume: bool,
) -> None:
    """Count the synaptic operations of SOURCE exactly and report energy per frame.

    SOURCE is a .pt checkpoint or an .emsir IR file (default: the shipped
    models/checkpoints/emsyolo-tiny-synth.pt). The network runs in the float reference
    simulator; each synapse group's nonzero inputs are multiplied by the fan-out their kernel
    really reaches (AC for spike inputs, MAC for graded ones). Counts are per frame: summed
    over its T steps, averaged over the inputs. Beside them: the papers' formula
    (fr·T·FLOPs) and the ANN of the same shape. docs/energy.md defines every number.
    Under torchrun the inputs are shared among the ranks (docs/distributed.md).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..distributed.jobs import SweepArgs, energy_sweep, file_digest, sweep_wanted
    from ..energy import counted_graph, energy_report, load_profile, measure
    from ..energy.render import render_table, write_plot
    from ..inputs import choose_inputs
    from ..pipeline import load_graph, parse_size, source_or_default
    from ..sizes import size_from_input
    from .notices import warn_input_fallback

    prof = load_profile(profile)  # fail on a bad profile before any simulation
    path = source_or_default(source)
    loaded = load_graph(path, size_from_input(input_spec, parse_size(input_size)), time_steps, encoding)
    graph = counted_graph(loaded.graph)
    meta = loaded.checkpoint.meta if loaded.checkpoint is not None else None
    inputs = choose_inputs(input_spec, graph, meta, limit, DEFAULT_SAMPLES, time_steps, gen1_mode)
    warn_input_fallback(inputs)
    err = Console(stderr=True)
    with Progress(
        TextColumn("counting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("count", total=inputs.count)
        if sweep_wanted(results, resume):
            what = {"source": str(path), "sha256": file_digest(path), "input": inputs.to_dict()}
            fingerprint = {**what, "input_size": input_size, "time_steps": time_steps}
            counts = energy_sweep(
                graph, inputs, SweepArgs(results, resume), fingerprint, lambda: progress.advance(task)
            )
            if counts is None:  # another rank than 0: rank 0 reports
                return
        else:
            counts = measure(graph, inputs, lambda: progress.advance(task))
    node = graph.input_node()
    report = energy_report(
        counts,
        prof,
        graph,
        integer_mode,
        model={
            "source": str(path),
            "input_shape": list(node.op.shape),  # type: ignore[attr-defined]
            "encoding": node.op.encoding,  # type: ignore[attr-defined]
            "nodes": len(graph),
        },
        input=inputs.to_dict(),
    )
    if plot:
        write_plot(report, plot)
    if save_json:
        from ..fileio import atomic_write_text

        atomic_write_text(save_json, json.dumps(report, indent=1) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
        return
    from ..tables import stdout_console

    render_table(report, stdout_console())
    if plot:
        click.echo(f"plot     : {plot}")
