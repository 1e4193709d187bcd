"""``emsdeploy verify``: spike-equivalence report across backends (DESIGN.md §7)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ..distributed.jobs import sweep_options
from .options import encoding_option, gen1_mode_option, provider_option

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
    "the integer ONNX graph). By default, where lava-nc is not installed, the lava run is reported as "
    "skipped; named here, it is required.",
)
@click.option(
    "--input",
    "input_spec",
    default=None,
    type=click.Path(),
    help="An image, a folder of images, a .npy of [B,3,H,W] images / [B,T,C,H,W] frames, or Gen1 *_td.dat data. Default: the "
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
@gen1_mode_option
@encoding_option
@provider_option
@sweep_options
def verify(source, targets, input_spec, limit, time_steps, input_size, onnx_model, lava_artifact, margin, show_nodes, as_json, save_json, gen1_mode, encoding, provider, results, resume) -> None:  # fmt: skip
    """Check that every backend computes the same spikes as its reference.

    SOURCE is a .pt checkpoint (ours or official) or an .emsir file (default: the shipped
    checkpoint). Float levels must be spike-exact; a flip is excused only where the
    reference membrane lies within --margin·V_th of the threshold and the flip can be
    attributed to that one node (node-isolated run, or the first end-to-end divergence).
    Integer levels (ref-fixed vs lava) must be bit-exact. Exit status: 0 when every
    comparison holds, 1 on any mismatch, 2 on unsupported input. Under torchrun the inputs
    are shared among the ranks (docs/distributed.md).
    """
    from rich.console import Console

    from ..distributed.jobs import SweepArgs, file_digest, sweep_wanted, verify_sweep
    from ..errors import InputError
    from ..exporters.lava._require import require_lava
    from ..inputs import choose_inputs
    from ..pipeline import load_graph, parse_size, source_or_default
    from ..providers import ort_providers
    from ..sizes import size_from_input
    from ..tables import stdout_console
    from ..verify import VerifyOptions, render_report
    from ..verify import verify as run_verify
    from .notices import warn_input_fallback

    chosen = tuple(t.strip() for t in targets.split(",") if t.strip())
    path = source_or_default(source)
    if not chosen:
        raise InputError("--targets is empty; choose from ref, onnx, lava")
    # Default targets skip the Lava run where lava-nc is missing; asked for, it is an error (before any work).
    lava_optional = click.get_current_context().get_parameter_source("targets") == ParameterSource.DEFAULT
    if "lava" in chosen and (lava_artifact or not lava_optional):
        require_lava()
    loaded = load_graph(path, size_from_input(input_spec, parse_size(input_size)), time_steps, encoding)
    graph = loaded.graph
    meta = loaded.checkpoint.meta if loaded.checkpoint is not None else None
    inputs = choose_inputs(input_spec, graph, meta, limit, DEFAULT_SAMPLES, time_steps, gen1_mode)
    warn_input_fallback(inputs)
    model = loaded.model  # the traced model: built once
    options = VerifyOptions(
        targets=chosen,
        margin=margin,
        time_steps=time_steps,
        onnx_model=Path(onnx_model) if onnx_model else None,
        lava_artifact=Path(lava_artifact) if lava_artifact else None,
        providers=ort_providers(provider) if "onnx" in chosen else None,
        lava_optional=lava_optional,
    )
    err = Console(stderr=True)
    samples = ((f"sample {i}", x) for i, x in enumerate(inputs.samples()))
    with err.status("verifying", spinner="dots") as status:

        def say(msg: str) -> None:
            status.update(f"verifying: {msg}")

        if sweep_wanted(results, resume):
            artifacts = {"onnx": file_digest(onnx_model), "lava": str(lava_artifact) if lava_artifact else None}
            fingerprint: dict[str, Any] = {
                "source": str(path),
                "sha256": file_digest(path),
                "input": inputs.to_dict(),
                **artifacts,
            }
            fingerprint.update(targets=chosen, margin=margin, time_steps=time_steps, input_size=input_size)
            args = SweepArgs(results, resume)
            report = verify_sweep(graph, inputs, model, options, str(path), args, fingerprint, say)
            if report is None:  # another rank than 0: rank 0 reports
                return
        else:
            report = run_verify(graph, samples, model, options, str(path), say)
    report_json = report.to_json()
    report_json["input"] = inputs.to_dict()
    if save_json:
        from ..fileio import atomic_write_text

        atomic_write_text(save_json, json.dumps(report_json, indent=1) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(report_json, indent=1) + "\n")
    else:
        render_report(report, inputs.to_dict(), stdout_console(), show_nodes)
    if not report.ok:
        sys.exit(EXIT_MISMATCH)
