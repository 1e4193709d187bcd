"""Benchmark: what exact SOP counting costs on top of a plain ref-float run.

For each case one graph and one input are prepared; then plain ``RefFloat.run`` and the
counting run (``SOPCounter.run``: the same simulator with the counting observer) alternate,
``rounds × repeats`` times each, strictly alternating, so that both see the same machine load. Reported per case:
the median time per frame of each, their quartiles, and the overhead = counting / plain − 1.

Cases:

* ``tiny-128``: the shipped checkpoint (models/checkpoints/emsyolo-tiny-synth.pt, 128×128, T=4)
  if it exists, else the same config (emsyolo-tiny) with random firing BN statistics: small
  layers, so per-op dispatch dominates and the relative overhead is the worst case;
* ``res10ee-320``: the paper's EMS-Res10 (res10-ee, full width) at the Gen1 size 320×320,
  T=5 event frames, random firing BN statistics;
* ``resnet34cat-640`` (only with ``--large``): the released COCO configuration at 640×640, T=4.

Usage: ``python bench/sop_overhead.py [--threads 2] [--rounds 3] [--repeats 3] [--large] [--quick]``.
Results go to ``bench/results/sop_overhead.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from common import RESULTS, firing_bn, save_results

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "checkpoints" / "emsyolo-tiny-synth.pt"


def _case(name: str):
    from emsdeploy.models import build_model
    from emsdeploy.pipeline import load_graph
    from emsdeploy.tracer import trace

    gen = torch.Generator().manual_seed(0)
    if name == "tiny-128":
        if SHIPPED.is_file():
            graph, source = load_graph(SHIPPED).graph, str(SHIPPED.relative_to(REPO))
        else:
            graph, source = (
                trace(firing_bn(build_model("emsyolo-tiny", 4, "direct")), (128, 128)),
                "emsyolo-tiny, random BN",
            )
        return graph, torch.rand(1, 3, 128, 128, generator=gen), source
    if name == "res10ee-320":
        graph = trace(firing_bn(build_model("res10-ee", 5, "frames")), (320, 320))
        events = torch.rand(1, 5, 3, 320, 320, generator=gen) < 0.05
        polarity = (torch.rand(1, 5, 3, 320, 320, generator=gen) < 0.5).float()
        return graph, torch.where(events, polarity, torch.full_like(polarity, 0.5)), "res10-ee, random BN"
    if name == "resnet34cat-640":
        graph = trace(firing_bn(build_model("resnet34-cat", 4, "direct")), (640, 640))
        return graph, torch.rand(1, 3, 640, 640, generator=gen), "resnet34-cat, random BN"
    raise ValueError(name)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _quartiles_ms(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [round(values[0] * 1e3, 2)] * 3
    return [round(v * 1e3, 2) for v in statistics.quantiles(values, n=4)]


def run_case(name: str, rounds: int, repeats: int) -> dict:
    from emsdeploy.simulators import RefFloat
    from emsdeploy.simulators.sops import SOPCounter

    graph, x, source = _case(name)
    sim, counter = RefFloat(graph), SOPCounter(graph)
    plain, counting = [], []
    sim.run(x)
    counter.run(x)  # warm up both
    for _ in range(rounds * repeats):  # strictly alternating: both see the same load
        plain.append(_timed(lambda: sim.run(x)))
        counting.append(_timed(lambda: counter.run(x)))
    pair = [c / p - 1 for p, c in zip(plain, counting)]
    counts = counter.counts()
    T = counts.time_steps
    med_plain, med_count = statistics.median(plain), statistics.median(counting)
    return {
        "case": name,
        "source": source,
        "input": list(x.shape),
        "time_steps": T,
        "flops_per_step": sum(r.flops for r in counts.synapses),
        "sop_per_frame": int(sum(r.sops.sum() for r in counts.synapses) / counts.samples),
        "plain_ms": round(med_plain * 1e3, 2),
        "plain_quartiles_ms": _quartiles_ms(plain),
        "counting_ms": round(med_count * 1e3, 2),
        "counting_quartiles_ms": _quartiles_ms(counting),
        "overhead": round(med_count / med_plain - 1, 4),
        "overhead_min": round(min(counting) / min(plain) - 1, 4),
        "overhead_pairs_median": round(statistics.median(pair), 4),
        "runs_each": len(plain),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--large", action="store_true", help="also resnet34-cat at 640x640 (slow on a CPU)")
    ap.add_argument("--quick", action="store_true", help="one round of one repeat, small case only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = ["tiny-128"] if args.quick else ["tiny-128", "res10ee-320"] + (["resnet34cat-640"] if args.large else [])
    rounds, repeats = (1, 3) if args.quick else (args.rounds, args.repeats)
    results = []
    for name in cases:
        r = run_case(name, rounds, repeats)
        results.append(r)
        print(
            f"{name:<16} plain {r['plain_ms']:>9.1f} ms/frame  counting {r['counting_ms']:>9.1f} ms/frame  "
            f"overhead {r['overhead']:+.1%} (fastest runs {r['overhead_min']:+.1%}, pairs {r['overhead_pairs_median']:+.1%})  ({r['runs_each']} runs each, T={r['time_steps']})",
            flush=True,
        )
    meta = {
        "threads": args.threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    lines = [
        "# SOP counting overhead vs plain ref-float",
        "",
        f"torch {meta['torch']}, {args.threads} thread(s), {meta['processor']}, load average {meta['load_average']}; "
        "plain and counting runs strictly alternate.",
        "",
        "| case | input | T | GMAC/step | plain ms/frame | counting ms/frame | overhead (medians) "
        "| overhead (fastest runs) | overhead (median of pairs) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} ({r['source']}) | {'x'.join(map(str, r['input']))} | {r['time_steps']} | "
            f"{r['flops_per_step'] / 1e9:.2f} | {r['plain_ms']} | {r['counting_ms']} | {r['overhead']:+.1%} | "
            f"{r['overhead_min']:+.1%} | {r['overhead_pairs_median']:+.1%} |"
        )
    save_results("sop_overhead", {"meta": meta, "results": results}, "\n".join(lines) + "\n")
    print(f"results in {RESULTS.relative_to(REPO)}/sop_overhead.{{json,md}}")


if __name__ == "__main__":
    main()
