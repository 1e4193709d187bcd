"""``emsdeploy export``: lower a checkpoint (or IR file) to a deployment target."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from .options import encoding_option, size_and_steps_options

TARGETS = ("lava", "onnx", "nir")


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--target", type=click.Choice(TARGETS), required=True, help="Deployment target.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Output file (onnx, nir) or folder (lava).")
@size_and_steps_options
@click.option("--spikes", is_flag=True, help="onnx: also output spikes.<node> of every LIF (for verification).")
@click.option(
    "--arithmetic",
    type=click.Choice(("float", "fixed")),
    default="float",
    show_default=True,
    help="onnx: float (the IR's float step) or fixed (Loihi's integer arithmetic, bit-exact with ref-fixed).",
)
@click.option(
    "--custom-to-host",
    is_flag=True,
    help="lava: run max-pools of currents and SiLU neurons on the host, not as custom processes.",
)
@click.option(
    "--allow-clip",
    is_flag=True,
    help="lava: clip values that do not fit Loihi's widths (each clip is reported) instead of failing.",
)
@click.option(
    "--spike-mode",
    type=click.Choice(("graded", "spike-driven")),
    default="graded",
    show_default=True,
    help="lava: integer spikes (SpikeYOLO) as one graded spike per step, or as D binary spikes over D sub-steps.",
)
@encoding_option
def export(
    source: str,
    target: str,
    output: str,
    input_size: str | None,
    time_steps: int | None,
    spikes: bool,
    arithmetic: str,
    custom_to_host: bool,
    allow_clip: bool,
    spike_mode: str,
    encoding: str | None,
) -> None:
    """Export SOURCE (a .pt checkpoint or an .emsir IR file) to --target.

    \b
    onnx : one-time-step ONNX graph with membrane state in and out (DESIGN.md §9)
    lava : lava-nc process network in Loihi fixed point, plus a mapping report
    nir  : the Neuromorphic Intermediate Representation (interop)
    """
    from ..pipeline import load_graph, parse_size

    loaded = load_graph(source, parse_size(input_size), time_steps, encoding)
    from ..exporters import export_options

    exporter = importlib.import_module(f"emsdeploy.exporters.{target}")
    flags = {
        "spikes": spikes,
        "custom_to_host": custom_to_host,
        "allow_clip": allow_clip,
        "arithmetic": arithmetic,
        "spike_mode": spike_mode,
    }
    lines = exporter.export_cli(loaded.graph, Path(output), export_options(target, **flags))
    for line in lines:
        click.echo(line)
