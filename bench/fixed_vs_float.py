"""The quantisation report: ref-fixed (Loihi fixed point) vs ref-float on the shipped checkpoint.

For each input (the first ``--images`` scenes of the checkpoint's synthetic validation split,
else deterministic random images; ``emsdeploy.inputs.default_inputs``) it reports the spike agreement of every LIF population over
the T valid steps (ref-fixed's records are aligned to each population's latency), the error of
the time-averaged head outputs, and of the decoded boxes (scores and centres). Defaults of
``QuantizeOptions`` unless ``--scale-bits`` is given. Falls back to a fresh res10-ee (width 0.25,
random BN statistics) when the shipped checkpoint is missing.

Output: ``bench/results/fixed_vs_float.{json,md}``.
Usage: ``python bench/fixed_vs_float.py [--size 128] [--images 4] [--scale-bits 12]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from lava_vs_ref_fixed import RESULTS, network  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from emsdeploy.exporters.lava.api import lower
    from emsdeploy.passes import partition, run_pipeline
    from emsdeploy.passes.quantize import QuantizeOptions
    from emsdeploy.simulators.fixed_vs_float import compare_fixed_float, format_fixed_float
    from emsdeploy.targets import load_target

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--scale-bits", type=int, default=None)
    ap.add_argument("--checkpoint", default=None, help="a checkpoint instead of the shipped one")
    a = ap.parse_args(argv)
    from emsdeploy.inputs import default_inputs

    graph, what, meta = network(a.size, 4, with_meta=True, checkpoint=a.checkpoint)
    opts = QuantizeOptions()
    if a.scale_bits is not None:
        opts = dataclasses.replace(opts, scale_bits_max=a.scale_bits)
    q = lower(graph, options=opts)
    fg = partition(run_pipeline(graph, "simplify"), load_target("lava-loihi"))
    inputs = default_inputs(graph, meta, a.images, None)  # the checkpoint's synthetic val split, else random
    source = inputs.description + (f" ({inputs.note})" if inputs.note else "")
    images = list(inputs.samples())
    reports = [compare_fixed_float(fg, q, x) for x in images]
    entries = sum(r["entries"] for r in reports)
    mism = sum(r["mismatches"] for r in reports)
    agreement = 1 - mism / max(1, entries)
    isolated = sum(r["isolated_agreement"] for r in reports) / len(reports)
    outs: dict[str, dict[str, float]] = {}
    for r in reports:
        for o, v in r["outputs"].items():
            for k, x in v.items():
                key = outs.setdefault(o, {})
                key[k] = max(key.get(k, 0.0), x) if "max" in k or k == "range" else key.get(k, 0.0) + x / len(reports)
    summary = {
        "network": what,
        "inputs": f"{source}; {a.size}x{a.size}, T=4",
        "options": opts.as_dict(),
        "spike_agreement": agreement,
        "isolated_agreement": isolated,
        "entries": entries,
        "mismatches": mism,
        "outputs": outs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fixed_vs_float.json").write_text(
        json.dumps({"summary": summary, "per_input": reports}, indent=1) + "\n"
    )
    lines = [
        "# Fixed point (ref-fixed) vs float (ref-float)",
        "",
        f"network: {what}; inputs: {summary['inputs']}; options: {opts.as_dict()}",
        "",
        f"**spike agreement {agreement:.4%}** ({mism} of {entries} LIF entries differ); "
        f"node-isolated {isolated:.4%} (one layer's quantisation, mean over populations)",
        "",
    ]
    for o, v in outs.items():
        lines.append(f"- {o}: " + ", ".join(f"{k} {x:.4g}" for k, x in v.items()))
    lines += ["", "## first input", "", "```", format_fixed_float(reports[0]), "```"]
    (RESULTS / "fixed_vs_float.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: 9 + len(outs)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
