"""Benchmark: the Lava export at the paper's input sizes (issue 14).

Exports, from random-weight models with randomised BN statistics (firing like trained ones):

* res10-ee (Gen1, 320×320, T = 5, ``frames`` encoding, 3 input channels as the official g1 code);
* resnet34-cat (COCO, 640×640, T = 4, with its SiLU heads).

Each export runs in a fresh child process; recorded per model: wall time of the export (lower +
write), the child's peak RSS, the artifact size (every file in the output folder), the int8
weight bytes (one byte per weight of the float model's convolutions) and the per-neuron arrays
(4 bytes per neuron of every population: bias, and v/u state on chip), the relays and latency.

``--check`` also compares ref-fixed with lava-nc (fast ProcessModels) bit for bit, every
population over all T + latency steps of the first inference: res10-ee at ``--check-size``
(default 320, its full size: about 40 s in lava-nc on a quiet 2-core machine) and resnet34-cat
at ``--check-size-coco`` (default 64, where lava-nc finishes in about a minute).

Output: ``bench/results/lava_scale.{json,md}``. Usage:
``python bench/lava_scale.py [--check] [--only res10-ee] [--size 320]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_info, firing_bn, save_results

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    # name: (config, size, T, encoding, input channels)
    "res10-ee": ("res10-ee", 320, 5, "frames", 3),
    "resnet34-cat": ("resnet34-cat", 640, 4, "direct", 3),
}
TARGETS = {"res10-ee": (90.0, 2.0), "resnet34-cat": (300.0, 4.0)}  # (s, GB) from issue 14


def _model(name: str, time_steps: int, encoding: str, channels: int):
    import torch

    from emsdeploy.models import EMSYOLO, build_model

    torch.manual_seed(0)
    cfg = {**build_model(MODELS[name][0]).config, "ch": channels}
    model = EMSYOLO(cfg, time_steps, encoding)
    return firing_bn(model)  # BN statistics that make the LIFs fire, as a trained model's do


def child_export(name: str, size: int, out: str) -> dict:
    """Trace and export one model; returns the figures (run in a fresh process)."""
    import numpy as np

    from emsdeploy.exporters.lava import export
    from emsdeploy.ir import Conv2d
    from emsdeploy.ir.ops.loihi import POPULATIONS
    from emsdeploy.tracer import trace

    _, _, T, enc, ch = MODELS[name]
    graph = trace(_model(name, T, enc, ch), (size, size))
    t0 = time.perf_counter()
    res = export(graph, out)
    wall = time.perf_counter() - t0
    q = res["graph"]
    int8 = sum(int(n.op.weight.size) for n in graph if isinstance(n.op, Conv2d))
    neurons = sum(int(np.prod(n.op.in_shape())) for n in q if isinstance(n.op, POPULATIONS))
    files = {p.name: p.stat().st_size for p in Path(out).iterdir()}
    t = res["mapping"]["totals"]
    return {
        "model": name,
        "size": size,
        "time_steps": T,
        "encoding": enc,
        "export_s": round(wall, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "artifact_bytes": sum(files.values()),
        "files": files,
        "int8_weight_bytes": int8,
        "per_neuron_bytes": 4 * neurons,
        "neurons": neurons,
        "relays": len(q.attrs["quantization"]["relays"]),
        "latency_steps": int(q.attrs["latency"]),
        "processes": t["processes"],
        "synapses_standard": t["standard"]["synapses"],
        "clips": len(q.attrs["quantization"]["clips"]),
    }


def child_check(name: str, size: int) -> dict:
    """ref-fixed vs lava-nc (fast models), every population over all T + L steps, one input."""
    import numpy as np
    import torch

    from emsdeploy.exporters.lava.api import lower
    from emsdeploy.exporters.lava.dag import dag_from_graph, write_dag
    from emsdeploy.exporters.lava.runner import run_in_subprocess
    from emsdeploy.simulators.ref_fixed import RefFixed
    from emsdeploy.tracer import trace

    _, _, T, enc, ch = MODELS[name]
    q = lower(trace(_model(name, T, enc, ch), (size, size)))
    gen = torch.Generator().manual_seed(1)
    shape = (1, T, ch, size, size) if enc == "frames" else (1, ch, size, size)
    x = (torch.rand(shape, generator=gen) < 0.3).float() if enc == "frames" else torch.rand(shape, generator=gen)
    t0 = time.perf_counter()
    ref = RefFixed(q).run(x, record="all", raw=True)
    t_ref = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        path = write_dag(dag_from_graph(q), Path(d) / "network.lava.h5")
        t1 = time.perf_counter()
        lava = run_in_subprocess(path, x, record="all", raw=True, timeout=3000)
        t_lava = time.perf_counter() - t1
    mismatches, entries, spikes = 0, 0, 0
    for pop, rec in lava.records.items():
        for key, got in rec.items():
            if key in ("s", "y"):
                continue
            want = np.asarray(ref.records[pop][key], np.int64)
            got = np.asarray(got, np.int64)
            mismatches += int(np.count_nonzero(got != want)) if got.shape == want.shape else got.size
            entries += got.size
            if key == "s_raw":
                spikes += int(got.sum())
    return {
        "model": name,
        "size": size,
        "steps": T + int(q.attrs["latency"]),
        "populations": len(lava.records),
        "entries": entries,
        "spikes": spikes,
        "mismatches": mismatches,
        "ref_fixed_s": round(t_ref, 1),
        "lava_s": round(t_lava, 1),
    }


def _run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "args": args}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=list(MODELS), action="append")
    ap.add_argument("--size", type=int, help="override every model's input size")
    ap.add_argument("--check", action="store_true", help="also compare ref-fixed with lava-nc")
    ap.add_argument("--check-size", type=int, default=320, help="res10-ee input for --check (default: full size)")
    ap.add_argument("--check-size-coco", type=int, default=64)
    a = ap.parse_args(argv)
    if a.child:
        kind, name, size = a.child[0], a.child[1], int(a.child[2])
        res = child_export(name, size, a.child[3]) if kind == "export" else child_check(name, size)
        print(json.dumps(res))
        return 0
    results: dict = {"machine": cpu_info(), "exports": [], "checks": []}
    for name in a.only or list(MODELS):
        size = a.size or MODELS[name][1]
        with tempfile.TemporaryDirectory() as d:
            r = _run_child(["export", name, str(size), str(Path(d) / "out")])
        if "error" not in r:
            s_max, gb_max = TARGETS[name]
            budget = r["int8_weight_bytes"] * 4 + r["per_neuron_bytes"]
            r["artifact_ratio"] = round(r["artifact_bytes"] / (r["int8_weight_bytes"] + r["per_neuron_bytes"]), 2)
            r["targets_met"] = {
                "time": r["export_s"] <= s_max,
                "rss": r["peak_rss_gb"] <= gb_max,
                "artifact": r["artifact_bytes"] <= budget,
            }
        results["exports"].append(r)
        print(json.dumps(r))
    if a.check:
        for name, size in (("res10-ee", a.check_size), ("resnet34-cat", a.check_size_coco)):
            if a.only and name not in a.only:
                continue
            r = _run_child(["check", name, str(size)])
            results["checks"].append(r)
            print(json.dumps(r))
    lines = [
        "# Lava export at paper sizes",
        "",
        f"CPU: {results['machine'].get('cpu', '?')} ({results['machine'].get('cores', '?')} cores, shared)",
        "",
        "| model | input | export s | peak RSS GB | artifact MB | int8 weights MB | per-neuron MB | ratio | relays | latency | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["exports"]:
        if "error" in r:
            lines.append(f"| {r['args'][1]} | | error: {r['error']} |")
            continue
        lines.append(
            f"| {r['model']} | {r['size']}² T={r['time_steps']} | {r['export_s']} | {r['peak_rss_gb']} | "
            f"{r['artifact_bytes'] / 1e6:.1f} | {r['int8_weight_bytes'] / 1e6:.1f} | {r['per_neuron_bytes'] / 1e6:.1f} | "
            f"{r['artifact_ratio']} | {r['relays']} | {r['latency_steps']} | {r['targets_met']} |"
        )
    for r in results["checks"]:
        lines.append("")
        lines.append(f"ref-fixed vs lava-nc: {json.dumps(r)}")
    save_results("lava_scale", results, "\n".join(lines) + "\n")
    failed = any("error" in r for r in results["exports"] + results["checks"]) or any(
        r.get("mismatches") for r in results["checks"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
