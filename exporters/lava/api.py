"""The Lava exporter's entry points: lower, build, export, load, and the CLI hook."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from emsdeploy.errors import ExportError
from emsdeploy.fileio import atomic_folder, atomic_write_text, manifest_names, write_manifest
from emsdeploy.ir import Graph, write_ir
from emsdeploy.passes import partition, run_pipeline
from emsdeploy.passes.align_delays import RELAY_ABOVE, align_delays
from emsdeploy.passes.loihi_profile import load_profile
from emsdeploy.passes.quantize import QuantizeOptions, format_quant_report, quantize
from emsdeploy.targets import load_target

from . import drc, fit
from .dag import dag_from_graph, write_dag
from .loader import FOLDER_FORMAT, load
from .network import LavaNetwork
from .netx import NETX_BIAS_EXP, chain_populations, write_netx
from .report import format_mapping, mapping_report

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
    """Float IR -> simplified, partitioned, quantized, delay-aligned graph that passes the DRC.
    ``relay_above``: delayed conv groups larger than this go through relay populations."""
    options = options or QuantizeOptions()
    _check_finite(graph)
    g = run_pipeline(graph, "simplify")
    g = partition(g, load_target(target), custom_to_host=custom_to_host)
    q = align_delays(quantize(g, options), relay_above=relay_above)
    drc.check(q, load_profile(options.profile))
    return q


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
) -> dict[str, Any]:
    """Lower ``graph`` and write the artifacts into the folder ``output``.

    ``fmt``: ``"auto"`` (netx when the network is a chain, else the DAG), ``"netx"`` or ``"dag"``.
    Returns the written paths, the format, and the reports.
    """
    options = options or QuantizeOptions()
    out = Path(output)
    q = lower(graph, options=options, custom_to_host=custom_to_host)
    names, why = chain_populations(q, check_bias=False)
    chain = bool(names)
    if fmt == "netx" and not chain:
        raise ExportError(f"cannot write netx: {why}")
    use_netx = chain and fmt in ("auto", "netx")
    if use_netx and options.bias_exp != NETX_BIAS_EXP:
        q = lower(graph, options=dataclasses.replace(options, bias_exp=NETX_BIAS_EXP), custom_to_host=custom_to_host)
    simplified = partition(run_pipeline(graph, "simplify"), load_target(TARGET), custom_to_host=custom_to_host)
    mapping = mapping_report(q, simplified)
    # Everything goes into a temporary folder that replaces ``out`` only when complete: a failure
    # or a signal leaves no partial folder, and a previous export stays intact (issue 14 item 3).
    with atomic_folder(out, owned=OWNED | manifest_names(out)) as tmp:
        files: dict[str, Path] = {}
        if use_netx:
            files["netx"], files["host"] = write_netx(q, tmp)
        else:
            files["dag"] = write_dag(dag_from_graph(q), tmp / "network.lava.h5")
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


def export_cli(graph: Graph, output: Path, options: dict[str, Any]) -> list[str]:
    """``emsdeploy export --target lava``: write the artifacts and summarise them."""
    qopts = QuantizeOptions(allow_clip=bool(options.get("allow_clip", False)))
    if options.get("scale_bits") is not None:
        qopts = dataclasses.replace(qopts, scale_bits_max=int(options["scale_bits"]))
    res = export(
        graph,
        output,
        options=qopts,
        custom_to_host=bool(options.get("custom_to_host", False)),
        fmt=options.get("lava_format", "auto"),
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
    clips = res["graph"].attrs["quantization"]["clips"]
    if clips:
        lines.append(f"clipped {len(clips)} fields (see quantization.txt)")
    return lines
