"""The Lava exporter's entry points: lower, build, export, load, and the CLI hook."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from emsdeploy.errors import ExportError
from emsdeploy.fileio import atomic_folder, atomic_write_text, manifest_names, write_manifest
from emsdeploy.ir import Graph, write_ir
from emsdeploy.passes.align_delays import RELAY_ABOVE
from emsdeploy.passes.flows import FlowOptions, record_flow, run_flow
from emsdeploy.passes.quantize import QuantizeOptions, format_quant_report
from emsdeploy.profiles.loihi import load_profile
from emsdeploy.targets import load_target

from . import drc, fit
from .dag import dag_from_graph, write_dag
from .loader import FOLDER_FORMAT, load
from .network import LavaNetwork
from .netx import NETX_BIAS_EXP, chain_populations, write_netx
from .options import LavaOptions
from .report import format_mapping, integer_spikes_line, mapping_report

__all__ = ["build", "export", "export_cli", "load", "lower"]

TARGET = "lava"
# What an export writes; an existing folder holding anything else is refused, not replaced.
OWNED = frozenset(
    {"network.lava.h5", "network.net", "host.lava.h5", "quantized.emsir", "mapping.txt", "mapping.json",
     "quantization.txt", "quantization.json", "manifest.json"} | fit.EXPORT_FILES
)  # fmt: skip


def lower(
    graph: Graph,
    *,
    options: QuantizeOptions | None = None,
    custom_to_host: bool = False,
    target: str = TARGET,
    relay_above: int = RELAY_ABOVE,
) -> Graph:
    """Float IR -> simplified, partitioned, quantized, delay-aligned graph that passes the DRC:
    the flow the ``lava`` target names, run once. ``relay_above``: delayed conv groups larger
    than this go through relay populations."""
    return _lower(graph, FlowOptions(target, custom_to_host, options or QuantizeOptions(), relay_above))[0]


def _lower(graph: Graph, fopts: FlowOptions) -> tuple[Graph, Graph]:
    """(the lowered graph, the partitioned float graph it came from), by one run of the flow."""
    _check_finite(graph)
    kept: dict[str, Graph] = {}

    def keep(step: str, g: Graph) -> None:
        if step == "partition":  # only this one: holding every step's graph doubled the peak memory
            kept[step] = g

    q = run_flow(graph, lava_flow(), fopts, observe=keep)
    drc.check(q, load_profile(fopts.quantize.profile))
    return q, kept.get("partition", q)


def lava_flow() -> str:
    """The pass flow the shipped ``lava`` target names (its TOML's ``flow``)."""
    flow = load_target(TARGET).flow
    if flow is None:
        raise ExportError(f"the shipped {TARGET} target names no flow")
    return flow


def _check_finite(graph: Graph) -> None:
    """NaN or Inf weights must not reach the quantiser (they would become saturated integers)."""
    import numpy as np

    for node in graph:
        for fld in dataclasses.fields(node.op):
            value = getattr(node.op, fld.name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ExportError(f"{node.name}: {fld.name} holds NaN or Inf; the Lava quantiser needs finite values")


def build(qgraph: Graph, fast_models: bool = True) -> LavaNetwork:
    """A runnable Lava network from a quantized, delay-aligned graph."""
    return LavaNetwork(dag_from_graph(qgraph), fast_models=fast_models)


def export(
    graph: Graph,
    output: str | Path,
    *,
    options: QuantizeOptions | None = None,
    custom_to_host: bool = False,
    fmt: str = "auto",
    relay_above: int = RELAY_ABOVE,
    spike_mode: str = "graded",
) -> dict[str, Any]:
    """Lower ``graph`` and write the artifacts into the folder ``output``.

    ``fmt``: ``"auto"`` (netx when the network is a chain, else the DAG), ``"netx"`` or ``"dag"``.
    ``spike_mode``: integer spikes as ``"graded"`` spikes or ``"spike-driven"`` binary sub-steps.
    Returns the written paths, the format, and the reports.
    """
    options = options or QuantizeOptions()
    out = Path(output)
    fopts = FlowOptions(TARGET, custom_to_host, options, relay_above)
    q, partitioned = _lower(graph, fopts)
    names, why = chain_populations(q, check_bias=False)
    chain = bool(names)
    if fmt == "netx" and not chain:
        raise ExportError(f"cannot write netx: {why}")
    use_netx = chain and fmt in ("auto", "netx")
    split = any("split_of" in n.meta for n in q)
    if use_netx and (options.bias_exp != NETX_BIAS_EXP or split):
        # netx hard-codes the bias exponent and has one synapse group per layer: quantize the kept
        # partitioned graph again with that exponent and no readout split (the chain shape shows
        # only after quantization); simplify and partition do not rerun.
        netx_q = dataclasses.replace(options, bias_exp=NETX_BIAS_EXP, readout_split=False)
        fopts = dataclasses.replace(fopts, quantize=netx_q)
        q = record_flow(run_flow(partitioned, "loihi", fopts), lava_flow())
        drc.check(q, load_profile(options.profile))
    mapping = mapping_report(q, partitioned, spike_mode)
    # Everything goes into a temporary folder that replaces ``out`` only when complete: a failure
    # or a signal leaves no partial folder, and a previous export stays intact (issue 14 item 3).
    with atomic_folder(out, owned=OWNED | manifest_names(out)) as tmp:
        files: dict[str, Path] = {}
        if use_netx:
            files["netx"], files["host"] = write_netx(q, tmp)
        else:
            files["dag"] = write_dag(dag_from_graph(q, spike_mode), tmp / "network.lava.h5")
        files["ir"] = write_ir(q, tmp / "quantized.emsir")
        files["mapping_txt"] = atomic_write_text(tmp / "mapping.txt", format_mapping(mapping) + "\n")
        files["mapping_json"] = atomic_write_text(tmp / "mapping.json", json.dumps(mapping, indent=1) + "\n")
        files["quant_txt"] = atomic_write_text(tmp / "quantization.txt", format_quant_report(q) + "\n")
        files["quant_json"] = atomic_write_text(
            tmp / "quantization.json", json.dumps(q.attrs["quantization"], indent=1) + "\n"
        )
        files.update(fit.write_fit_reports(q, tmp))  # will it fit on Loihi (docs/fit.md)
        files["manifest"] = write_manifest(tmp, FOLDER_FORMAT)
    files = {k: out / p.name for k, p in files.items()}
    return {
        "format": "netx" if use_netx else "dag",
        "chain_reason": why,
        "files": files,
        "mapping": mapping,
        "graph": q,
    }


def export_cli(graph: Graph, output: Path, options: LavaOptions) -> list[str]:
    """``emsdeploy export --target lava``: write the artifacts and summarise them."""
    res = export(
        graph,
        output,
        options=options.quantize,
        custom_to_host=options.custom_to_host,
        fmt=options.fmt,
        relay_above=options.relay_above,
        spike_mode=options.spike_mode,
    )
    t = res["mapping"]["totals"]
    lines = [f"wrote {p}" for p in res["files"].values()]
    if res["format"] == "netx":
        lines.append(
            "format: netx (a chain): load with lava.lib.dl.netx.hdf5.Network, or emsdeploy.exporters.lava.load(folder)"
        )
    else:
        lines.append(
            f"format: emsdeploy.lava-dag ({res['chain_reason']}); load with emsdeploy.exporters.lava.load(folder)"
        )
    lines.append(
        f"{t['processes']} processes: {t['standard']['processes']} standard, {t['custom']['processes']} custom (simulation only), "
        f"{t['host']['processes']} host; {t['standard']['neurons']} chip neurons, {t['standard']['synapses']} synapses; "
        f"latency {t['latency_steps']} steps (a run is T + {t['latency_steps']})"
    )
    if "integer_spikes" in res["mapping"]:
        lines.append(integer_spikes_line(res["mapping"]["integer_spikes"]))
    clips = res["graph"].attrs["quantization"]["clips"]
    if clips:
        lines.append(f"clipped {len(clips)} fields (see quantization.txt)")
    return lines
