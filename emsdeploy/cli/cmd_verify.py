"""``emsdeploy verify``: spike-equivalence report across backends (DESIGN.md §7)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

DEFAULT_SAMPLES = 2
EXIT_MISMATCH = 1


@click.command()
@click.argument("source", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--targets",
    default="ref,onnx,lava",
    show_default=True,
    help="Comma-separated levels: ref (PyTorch vs ref-float), onnx (ref-float vs onnxruntime), "
    "lava (ref-fixed vs lava-nc, plus the fixed-vs-float quantisation section), onnx-fixed (ref-fixed vs "
    "the integer ONNX graph).",
)
@click.option(
    "--input",
    "input_spec",
    default=None,
    type=click.Path(),
    help="An image, a folder of images, or a .npy of [B,3,H,W] images / [B,T,C,H,W] frames. Default: the "
    f"first {DEFAULT_SAMPLES} samples of the checkpoint's synthetic validation split, else deterministic random inputs.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use at most this many input samples.")
@click.option("--steps", "-T", "time_steps", type=click.IntRange(min=1), default=None, help="Time steps T.")
@click.option("--input-size", default=None, help="H or HxW (default: the checkpoint's training size).")
@click.option(
    "--onnx",
    "onnx_model",
    type=click.Path(dir_okay=False),
    default=None,
    help="Verify this exported ONNX model (float: exported with --spikes; a --arithmetic fixed export is "
    "compared with ref-fixed) instead of a fresh export.",
)
@click.option(
    "--lava",
    "lava_artifact",
    type=click.Path(),
    default=None,
    help="Verify this exported Lava artifact instead of a fresh export.",
)
@click.option(
    "--margin",
    type=float,
    default=1e-5,
    show_default=True,
    help="Near-threshold margin, relative to V_th, for float levels.",
)
@click.option("--nodes", "show_nodes", is_flag=True, help="List every node, not only those with mismatches.")
@click.option("--json", "as_json", is_flag=True, help="Print only the report as JSON.")
@click.option(
    "--save-json", type=click.Path(dir_okay=False), default=None, help="Also write the JSON report to this file."
)
def verify(source, targets, input_spec, limit, time_steps, input_size, onnx_model, lava_artifact, margin, show_nodes, as_json, save_json) -> None:  # fmt: skip
    """Check that every backend computes the same spikes as its reference.

    SOURCE is a .pt checkpoint (ours or official) or an .emsir file (default: the shipped
    checkpoint). Float levels must be spike-exact; a flip is excused only where the
    reference membrane lies within --margin·V_th of the threshold and the flip can be
    attributed to that one node (node-isolated run, or the first end-to-end divergence).
    Integer levels (ref-fixed vs lava) must be bit-exact. Exit status: 0 when every
    comparison holds, 1 on any mismatch, 2 on unsupported input.
    """
    from rich.console import Console

    from ..errors import InputError
    from ..inputs import choose_inputs
    from ..pipeline import load_graph, parse_size, source_or_default
    from ..verify import VerifyOptions, render_report
    from ..verify import verify as run_verify

    chosen = tuple(t.strip() for t in targets.split(",") if t.strip())
    path = source_or_default(source)
    if not chosen:
        raise InputError("--targets is empty; choose from ref, onnx, lava")
    loaded = load_graph(path, parse_size(input_size), time_steps)
    graph = loaded.graph
    meta = loaded.checkpoint.meta if loaded.checkpoint is not None else None
    inputs = choose_inputs(input_spec, graph, meta, limit, DEFAULT_SAMPLES, time_steps)
    model = loaded.checkpoint.build() if loaded.checkpoint is not None else None
    options = VerifyOptions(
        targets=chosen,
        margin=margin,
        time_steps=time_steps,
        onnx_model=Path(onnx_model) if onnx_model else None,
        lava_artifact=Path(lava_artifact) if lava_artifact else None,
    )
    err = Console(stderr=True)
    samples = ((f"sample {i}", x) for i, x in enumerate(inputs.samples()))
    with err.status("verifying", spinner="dots") as status:
        report = run_verify(graph, samples, model, options, str(path), lambda msg: status.update(f"verifying: {msg}"))
    report_json = report.to_json()
    report_json["input"] = inputs.to_dict()
    if save_json:
        from ..fileio import atomic_write_text

        atomic_write_text(save_json, json.dumps(report_json, indent=1) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(report_json, indent=1) + "\n")
    else:
        render_report(report, inputs.to_dict(), Console(width=max(120, Console().width)), show_nodes)
    if not report.ok:
        sys.exit(EXIT_MISMATCH)
