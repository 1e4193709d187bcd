"""``emsdeploy fit``: will the network fit on Loihi? Cores, chips, board and the binding limit per layer.

The map itself is ``exporters/lava/fit.py`` (pure, on the quantized graph); this command wires
the spike counts in: one inference of ref-fixed, the bit-exact reference of what Lava runs,
counts every population's nonzero outputs per step and per neuron (observed, not recorded, so
memory stays at the size of one step).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..memory import release_freed
from .options import encoding_option, size_and_steps_options

PLOT_COLOURS = {
    "neurons": "tab:blue",
    "input_axons": "tab:orange",
    "output_axons": "tab:green",
    "synapse_memory": "tab:red",
}


@click.command()
@click.argument("source", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--chip",
    default="loihi1",
    show_default=True,
    help="loihi1, loihi2, or the path of a chip TOML file (docs/fit.md).",
)
@size_and_steps_options
@click.option("--json", "as_json", is_flag=True, help="Print only the map as one JSON object (schema: docs/fit.md).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write cores per layer, coloured by the binding limit (PNG).",
)
@click.option(
    "--no-traffic",
    is_flag=True,
    help="Skip the ref-fixed inference: no spike traffic, energy or latency (the map alone).",
)
@click.option(
    "--custom-to-host",
    is_flag=True,
    help="Lower max-pools of currents and SiLU neurons to the host, as export --custom-to-host does (no cores).",
)
@click.option(
    "--spike-mode",
    type=click.Choice(("graded", "spike-driven")),
    default="graded",
    show_default=True,
    help="Integer spikes (SpikeYOLO) as graded messages or as D binary spikes over D sub-steps; both modes "
    "are summarised when the network has them.",
)
@encoding_option
def fit(
    source: str | None,
    chip: str,
    input_size: str | None,
    time_steps: int | None,
    as_json: bool,
    plot: str | None,
    no_traffic: bool,
    custom_to_host: bool,
    spike_mode: str,
    encoding: str | None,
) -> None:
    """Map SOURCE onto Loihi cores and chips before anyone compiles it.

    SOURCE is a .pt checkpoint, an .emsir IR file, or the quantized.emsir an
    `emsdeploy export --target lava` wrote (default: the shipped
    models/checkpoints/emsyolo-tiny-synth.pt). The network is lowered as the Lava export lowers
    it; every population is split into cores under the chip's limits at once (neurons, input
    axons, output axons, synapse memory) and the limit that binds is named. The spike traffic
    between cores and chips, the energy and the latency come from the exact spike counts of one
    inference in ref-fixed (the first default input sample). Exit status 2 when a layer cannot
    be split to fit (a DRC error naming the layer, the limit and both numbers).
    """
    from ..exporters.lava.fit import check_fits, fit_json, format_fit, load_chip
    from ..pipeline import load_graph, parse_size, source_or_default

    chip_desc = load_chip(chip)  # a bad chip file fails before anything is traced
    loaded = load_graph(source_or_default(source), parse_size(input_size), time_steps, encoding)
    graph, meta = loaded.graph, _meta(loaded)
    # Past the trace only the graph is needed: the model and the checkpoint's weights go, and the
    # float graph goes once lowered (at 640×640 each is hundreds of MB beside the lowered graph).
    del loaded
    q = lowered(graph, custom_to_host)
    del graph
    release_freed()  # the lowering's freed pages go back before ref-fixed's run stacks on them
    rep, est = fit_lowered(q, meta, chip_desc, traffic=not no_traffic, spike_mode=spike_mode)
    if plot:
        write_fit_plot(rep, plot)
    if as_json:
        sys.stdout.write(json.dumps(fit_json(rep), indent=1) + "\n")
    else:
        click.echo(format_fit(rep, est))
        if plot:
            click.echo(f"plot: {plot}")
    check_fits(rep)  # exit 2 with one line when a layer cannot be mapped


def fit_loaded(
    loaded: Any, chip: Any, traffic: bool = True, custom_to_host: bool = False, spike_mode: str = "graded"
) -> tuple[Any, Any]:
    """The fit report of a loaded source on ``chip`` (a loaded chip description), and the energy
    and latency estimate when ``traffic`` (``None`` without): what ``fit`` prints, and what the
    facade's ``m.fit()`` returns. ``spike_mode``: how integer spikes travel (docs/fit.md)."""
    return fit_lowered(lowered(loaded.graph, custom_to_host), _meta(loaded), chip, traffic, spike_mode)


def _meta(loaded: Any) -> dict | None:
    return loaded.checkpoint.meta if loaded.checkpoint is not None else None


def lowered(graph: Any, custom_to_host: bool = False) -> Any:
    """The quantized Lava graph the map is made of: ``graph`` itself when it is an export's
    quantized.emsir, else ``graph`` lowered as the Lava export lowers it."""
    if graph.attrs.get("quantized") and graph.attrs.get("delays_aligned"):
        return shared_identities(graph)
    from ..exporters.lava import lower

    return lower(graph, custom_to_host=custom_to_host)


def shared_identities(q: Any) -> Any:
    """``q`` with its identity synapse groups sharing their arrays per shape, as the lowering makes
    them (``align_delays``' relays). An IR file holds each apart: 14 bytes a neuron, 0.6 GB of
    resnet34-cat @640's quantized.emsir. The ops are equal values; ``q`` itself is not changed."""
    import dataclasses

    import numpy as np

    from ..ir.ops.loihi import SynSparse
    from ..simulators.fixed_kernels import is_diagonal

    canon: dict[tuple[Any, ...], Any] = {}
    out = None
    for node in q:
        op = node.op
        if not isinstance(op, SynSparse) or not is_diagonal(op) or not np.all(op.weight_s8 == 1):
            continue
        first = canon.setdefault(tuple(op.in_shape), op)
        if first is op:
            continue
        out = out if out is not None else q.copy()
        shared = dataclasses.replace(op, weight_s8=first.weight_s8, indices=first.indices, indptr=first.indptr)
        out.replace(node.name, op=shared)
    return out if out is not None else q


def fit_lowered(
    q: Any, meta: dict | None, chip: Any, traffic: bool = True, spike_mode: str = "graded"
) -> tuple[Any, Any]:
    """:func:`fit_loaded` from the lowered graph (``meta``: the checkpoint's, for the input set)."""
    from ..exporters.lava.fit import estimate
    from ..exporters.lava.fit import fit as fit_graph

    counts = spike_counts(q, meta) if traffic else None
    rep = fit_graph(q, chip, counts, spike_mode)
    if counts is None:
        return rep, None
    from ..energy import load_profile

    prof = load_profile("loihi")
    return rep, estimate(rep, prof.pj("ac"), prof.pj("active_neuron_update"))


def spike_counts(q: Any, meta: dict | None) -> dict[str, Any]:
    """Nonzero outputs of every population in one inference of ref-fixed: per valid step and per
    neuron (summed over the steps); for integer spikes also the sums of the values (the unit
    spikes of a spike-driven export). The input is the first sample of the default set (the
    checkpoint's synthetic validation split, else a deterministic random input)."""
    import torch

    from ..exporters.lava.fit import PopulationCounts
    from ..inputs import choose_inputs
    from ..simulators import RefFixed
    from .notices import warn_input_fallback

    inputs = choose_inputs(None, q, meta, 1, 1, None)
    warn_input_fallback(inputs)
    from ..ir import Kind

    steps: dict[str, list[int]] = {}
    per_neuron: dict[str, torch.Tensor] = {}
    integer = {n.name for n in q if q.kind(n.name) == Kind.INTEGER}
    unit_steps: dict[str, list[int]] = {}
    units: dict[str, torch.Tensor] = {}
    # a neuron is counted at most once per valid step: the narrowest integer that holds T
    count_type = torch.uint8 if q.time_steps < 1 << 8 else torch.int32

    def observe(name: str, out: torch.Tensor) -> None:
        nz = out[0] != 0
        steps.setdefault(name, []).append(int(nz.sum()))
        if name in per_neuron:
            per_neuron[name] += nz
        else:
            per_neuron[name] = nz.to(count_type)
        if name in integer:
            unit_steps.setdefault(name, []).append(int(out[0].sum()))
            units[name] = units[name] + out[0] if name in units else out[0].to(torch.int64)

    x = next(iter(inputs.samples()))
    RefFixed(q).run(x[:1], observer=observe)
    import numpy as np

    return {
        name: PopulationCounts(
            np.asarray(steps[name], dtype=np.int64),
            per_neuron[name].numpy(),
            np.asarray(unit_steps[name], dtype=np.int64) if name in units else None,
            units[name].numpy() if name in units else None,
        )
        for name in steps
    }


def write_fit_plot(rep: Any, path: str) -> None:
    """Cores per layer, coloured by the limit that binds (log scale), as the energy plot does it."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ..fileio import atomic_write

    layers = rep.layers
    x = range(len(layers))
    width = max(8.0, 0.22 * len(layers) + 2)
    fig, ax = plt.subplots(figsize=(width, 5), constrained_layout=True)
    ax.bar(x, [max(r.cores, 0) for r in layers], color=[PLOT_COLOURS[r.binding] for r in layers])
    for i, r in enumerate(layers):
        if r.error:
            ax.annotate("DRC", (i, 1), ha="center", fontsize=6, color="black")
    ax.set_yscale("log")
    ax.set_ylabel("cores")
    ax.set_title(
        f"{rep.chip.name}: {rep.cores} cores on {rep.chips} chip(s), board {rep.board or 'none listed'}"
        + (f"; {len(rep.errors)} DRC error(s)" if rep.errors else ""),
        fontsize=10,
    )
    ax.legend(handles=[Patch(color=c, label=k) for k, c in PLOT_COLOURS.items()], title="binding limit", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels([r.name for r in layers], rotation=90, fontsize=6)
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120), suffix=".png")
    plt.close(fig)
