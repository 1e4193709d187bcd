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
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from common import save_results  # noqa: E402
from lava_vs_ref_fixed import network  # noqa: E402


def detection_map(graph, float_graph, fixed_graph, meta: dict, n: int) -> dict:
    """mAP of ref-float and of ref-fixed on the first ``n`` scenes of the checkpoint's val split
    (the training code's NMS and pycocotools scoring)."""
    from emsdeploy.models.data import dataset_from_recipe
    from emsdeploy.models.training.evaluate import coco_map
    from emsdeploy.models.training.nms import non_max_suppression
    from emsdeploy.simulators import RefFixed, RefFloat

    ds = dataset_from_recipe(meta["data"], "val")
    samples = [ds[i] for i in range(min(n, len(ds)))]
    gt = ds.coco_ground_truth()
    ids = {s.image_id for s in samples}
    gt = {
        **gt,
        "images": [im for im in gt["images"] if im["id"] in ids],
        "annotations": [a for a in gt["annotations"] if a["image_id"] in ids],
    }
    decode = next(nd.name for nd in fixed_graph if nd.op.type_name == "Decode")
    out = {"images": len(samples)}
    for key, backend in (("float", RefFloat(float_graph)), ("fixed", RefFixed(fixed_graph))):
        results = []
        for k in range(0, len(samples), 16):
            chunk = samples[k : k + 16]
            x = torch.stack([s.x for s in chunk])
            pred = backend.run(x).outputs[decode].float()
            for det, s in zip(non_max_suppression(pred, 0.001, 0.6, 100), chunk):
                sx, sy = s.scale
                for x1, y1, x2, y2, score, cls in det.double().tolist():
                    box = [x1 / sx, y1 / sy, (x2 - x1) / sx, (y2 - y1) / sy]
                    results.append(
                        {"image_id": s.image_id, "category_id": ds.category_ids[int(cls)], "bbox": box, "score": score}
                    )
        m = coco_map(gt, results)
        out[key] = {"map50": m["map50"], "map50_95": m["map50_95"]}
    return out


def main(argv: list[str] | None = None) -> int:
    from emsdeploy.exporters.lava.api import lower
    from emsdeploy.passes import partition, run_flow
    from emsdeploy.passes.quantize import QuantizeOptions
    from emsdeploy.targets import load_target
    from emsdeploy.verify.quantization import compare_fixed_float, format_fixed_float

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--scale-bits", type=int, default=None)
    ap.add_argument("--checkpoint", default=None, help="a checkpoint instead of the shipped one")
    ap.add_argument("--map-images", type=int, default=64, help="val scenes for the mAP comparison (0: skip)")
    a = ap.parse_args(argv)
    from emsdeploy.inputs import default_inputs

    graph, what, meta = network(a.size, 4, with_meta=True, checkpoint=a.checkpoint)
    opts = QuantizeOptions()
    if a.scale_bits is not None:
        opts = dataclasses.replace(opts, scale_bits_max=a.scale_bits)
    q = lower(graph, options=opts)
    fg = partition(run_flow(graph, "simplify"), load_target("lava"))
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
    if a.map_images and meta and isinstance(meta.get("data"), dict):
        summary["map"] = detection_map(graph, fg, q, meta, a.map_images)
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
    if "map" in summary:
        m = summary["map"]
        lines.append(
            f"- detection mAP@0.5 on {m['images']} val scenes: float {m['float']['map50']:.4f}, fixed {m['fixed']['map50']:.4f}; "
            f"mAP@0.5:0.95 float {m['float']['map50_95']:.4f}, fixed {m['fixed']['map50_95']:.4f}"
        )
    lines += ["", "## first input", "", "```", format_fixed_float(reports[0]), "```"]
    save_results("fixed_vs_float", {"summary": summary, "per_input": reports}, "\n".join(lines) + "\n")
    print("\n".join(lines[: 9 + len(outs)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
