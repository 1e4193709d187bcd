"""Benchmark: ref-fixed (emsdeploy's Loihi fixed-point simulator) vs lava-nc on the same network.

The network is the shipped checkpoint (``models/checkpoints/emsyolo-tiny-synth.pt``) when it
exists, else a fresh res10-ee at width 0.25 with random BN statistics (the same layout); the
input one random image at ``--size`` (default 128×128, the shipped model's size), T = 4. Both run the same quantized,
delay-aligned graph for T + latency steps:

* ref-fixed (torch, one thread) — median over ``--repeats`` runs after a warm-up. It computes
  each population only during its T valid steps (its other steps reach no valid output), so
  its "ms/step" is the time of a whole inference divided by the T + latency steps Lava runs;
* lava-nc ``Loihi2SimCfg(select_tag="fixed_pt")`` in a fresh process, once with emsdeploy's
  fast Conv/DelaySparse ProcessModels and once with lava-nc's stock models (``--no-stock``
  skips the slow one). Lava's time per step excludes compilation and process start-up (the
  first step), which are reported separately.

The results must be identical (every population's spikes, the readouts' integers); the script
fails otherwise. Output: ``bench/results/lava_vs_ref_fixed.{json,md}``.

Usage: ``python bench/lava_vs_ref_fixed.py [--size 128] [--repeats 5] [--no-stock]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import firing_bn, save_results

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "checkpoints" / "emsyolo-tiny-synth.pt"


def network(size: int, time_steps: int, with_meta: bool = False, checkpoint: str | Path | None = None):
    """(graph, description[, checkpoint meta]) of ``checkpoint`` (default: the shipped one), or of
    the fallback when that file is missing."""
    from emsdeploy.models import EMSYOLO, build_model
    from emsdeploy.pipeline import load_graph
    from emsdeploy.tracer import trace

    path = Path(checkpoint) if checkpoint else SHIPPED
    if path.exists():
        loaded = load_graph(path, (size, size), time_steps)
        res = loaded.graph, f"checkpoint {path.name}"
        return (*res, loaded.checkpoint.meta) if with_meta else res
    torch.manual_seed(0)
    model = EMSYOLO({**build_model("res10-ee").config, "width_multiple": 0.25}, time_steps, "direct")
    res = (
        trace(firing_bn(model), (size, size)),  # BN statistics that make the LIFs fire, as a trained model's do
        "fresh res10-ee (width 0.25, random BN statistics; the shipped checkpoint is missing)",
    )
    return (*res, None) if with_meta else res


def main(argv: list[str] | None = None) -> int:
    from emsdeploy.exporters.lava.api import lower
    from emsdeploy.exporters.lava.dag import dag_from_graph, write_dag
    from emsdeploy.exporters.lava.runner import run_in_subprocess
    from emsdeploy.simulators.ref_fixed import RefFixed

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128, help="input H = W (128: the shipped model's training size)")
    ap.add_argument("--time-steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-stock", action="store_true", help="skip lava-nc's stock ProcessModels (slow)")
    ap.add_argument("--checkpoint", default=None, help="a checkpoint instead of the shipped one")
    a = ap.parse_args(argv)

    graph, what = network(a.size, a.time_steps, checkpoint=a.checkpoint)
    q = lower(graph)
    dag = dag_from_graph(q)
    T = a.time_steps
    n_steps = T + dag.latency
    x = torch.rand(1, *graph.input_node().op.shape, generator=torch.Generator().manual_seed(1))
    kinds: dict[str, int] = {}
    for p in dag.procs:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1

    sim = RefFixed(q)
    ref = sim.run(x, record="all", raw=True)  # warm-up, and the reference
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        sim.run(x)
        times.append(time.perf_counter() - t0)
    ref_ms = 1000 * statistics.median(times) / n_steps
    t0 = time.perf_counter()
    sim.run(x.repeat(8, 1, 1, 1))
    ref_batch_ms = 1000 * (time.perf_counter() - t0) / n_steps / 8

    results = {
        "network": what,
        "input": f"{a.size}x{a.size}, T={T}",
        "steps_per_run": n_steps,
        "lava_processes": len(dag.procs),
        "process_kinds": kinds,
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__},
        "ref_fixed": {"ms_per_step": ref_ms, "ms_per_step_per_sample_batch8": ref_batch_ms, "threads": sim.threads},
    }
    with tempfile.TemporaryDirectory() as d:
        path = write_dag(dag, Path(d) / "network.lava.h5")
        modes = [("lava_fast", True)] + ([] if a.no_stock else [("lava_stock", False)])
        for key, fast in modes:
            lava = run_in_subprocess(path, x, record="all", raw=True, fast_models=fast, timeout=3600)
            mism = 0
            for name, rec in lava.records.items():
                for k, v in rec.items():
                    mism += int((np.asarray(v, np.int64) != np.asarray(ref.records[name][k], np.int64)).sum())
            t = lava.timings
            results[key] = {
                "ms_per_step": t["ms_per_step"],
                "start_s": t.get("start_s", 0.0),
                "stop_s": t.get("stop_s", 0.0),
                "mismatches": mism,
                "speedup_of_ref_fixed": t["ms_per_step"] / ref_ms,
            }
            if mism:
                print(f"{key}: {mism} mismatches against ref-fixed", file=sys.stderr)
                return 1
    lines = [
        "# ref-fixed vs lava-nc (Loihi2SimCfg fixed_pt)",
        "",
        f"network: {what}; input {results['input']}; {n_steps} steps per run; {len(dag.procs)} Lava processes {kinds}",
        "",
        "| backend | ms/step | ref-fixed is faster by | results |",
        "|---|---|---|---|",
        f"| ref-fixed (torch, 1 thread; inference time / {n_steps}) | {ref_ms:.2f} | — | reference |",
        f"| ref-fixed, batch of 8 (per sample) | {ref_batch_ms:.2f} | — | |",
    ]
    for key, label in (
        ("lava_fast", "lava-nc, emsdeploy's fast Conv/DelaySparse models"),
        ("lava_stock", "lava-nc, stock models"),
    ):
        if key in results:
            r = results[key]
            lines.append(
                f"| {label} | {r['ms_per_step']:.1f} (+{r['start_s']:.1f} s start) | {r['speedup_of_ref_fixed']:.0f}× | bit-exact ({r['mismatches']} mismatches) |"
            )
    save_results("lava_vs_ref_fixed", results, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
