"""Benchmark: stepwise ONNX (onnxruntime) vs PyTorch eager on the same model, input and threads.

For each case the parent process prepares one model (a checkpoint in our format), exports its
stepwise ONNX graph and writes one input; then fresh child processes, alternating between the
two backends so that both see the same machine load, each load their backend, warm up, and
time whole runs (T steps, readout and box decoding; no NMS). Reported per backend:

* median latency per frame = median over runs of (run time / T), with the quartiles;
* peak memory = the child's peak resident set, VmHWM (libraries + model + activations), and the same
  measured right after the imports (the libraries alone);
* the ratio torch / onnx of both.

The children also save their outputs, and the parent checks that the two backends agree
(readouts, and the detections after NMS).

Usage: ``python bench/onnx_vs_torch.py [--threads 2] [--rounds 3] [--repeats 5] [--quick]``.
Results go to ``bench/results/onnx_vs_torch.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import cpu_name

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "checkpoints" / "emsyolo-tiny-synth.pt"


def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    VmHWM (Linux), not ``ru_maxrss``: a child started with fork + exec inherits in ``ru_maxrss``
    the resident size of the parent it was forked from, which would hide the difference.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- children -----------------------------------------------------------------------------
def _child(args: argparse.Namespace) -> None:
    x = np.load(args.input)
    times: list[float] = []
    if args.child == "torch":
        import torch

        from emsdeploy.checkpoint import load_any

        torch.set_num_threads(int(args.threads))
        rss_libs = _rss_mb()
        model = load_any(args.model).build().eval()
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            for _ in range(args.warmup):
                model.predict(xt)
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                boxes, _raws = model.predict(xt)
                times.append(time.perf_counter() - t0)
        steps = model.time_steps if model.encoding == "direct" else x.shape[1]
        np.save(args.save, boxes.numpy())
    else:
        from emsdeploy.exporters.onnx import StepwiseSession

        rss_libs = _rss_mb()
        session = StepwiseSession(args.model, threads=int(args.threads), spin=not args.nospin)
        for _ in range(args.warmup):
            session.run(x)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            trace = session.run(x)
            times.append(time.perf_counter() - t0)
        steps = trace.time_steps
        np.save(args.save, trace.outputs[session.meta.decode])
    report = {
        "ms_per_frame": [1000 * t / steps for t in times],
        "steps": steps,
        "rss_libs_mb": rss_libs,
        "peak_rss_mb": _rss_mb(),
        "torch_imported": "torch" in sys.modules,
    }
    print(json.dumps(report))


# --- parent -------------------------------------------------------------------------------
def _random_detector(config: str, size: int, time_steps: int, encoding: str, seed: int = 0):
    """A fresh model with realistic firing: tdBN statistics calibrated on random inputs (as
    training would set them), then γ and β drawn at random."""
    import torch

    from emsdeploy.models import TdBatchNorm, build_model

    torch.manual_seed(seed)
    model = build_model(config, time_steps=time_steps, encoding=encoding)
    bns = [m for m in model.modules() if isinstance(m, TdBatchNorm)]
    for bn in bns:
        bn.momentum = 1.0  # running stats = this batch's stats
    x = _input(encoding, (size, size), time_steps, batch=2, seed=seed + 1)
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(x))
    g = torch.Generator().manual_seed(seed)
    for bn in bns:
        bn.weight.data = 0.2 + 0.3 * torch.rand(bn.num_features, generator=g)
        bn.bias.data = -0.1 + 0.1 * torch.randn(bn.num_features, generator=g)
    det = model.detect
    with torch.no_grad():  # objectness prior raised so that the agreement check has boxes to compare
        for conv in det.m:
            conv.bias.view(det.na, det.no)[:, 4:] = 0.0
    return model.eval()


def _input(encoding: str, size: tuple[int, int], time_steps: int, batch: int = 1, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if encoding == "direct":
        return rng.random((batch, 3, *size), dtype=np.float32)
    # event frames: about 10% of the pixels carry an event in a step
    return (rng.random((batch, time_steps, 3, *size)) < 0.1).astype(np.float32)


def _scene(hw: tuple[int, int]) -> np.ndarray | None:
    """Validation scene 0 of the synthetic shapes data the shipped model is trained on."""
    try:
        from emsdeploy.models.data.recipe import SynthRecipe
        from emsdeploy.models.data.synthetic import make_scene
    except ImportError:
        return None
    if hw[0] != hw[1]:
        return None
    img, _ = make_scene(SynthRecipe(size=hw[0]), "val", 0)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def _prepare(case: str, work: Path, size: int, time_steps: int, checkpoint: Path = SHIPPED) -> dict:
    from emsdeploy.checkpoint import from_model, load_any, save_checkpoint
    from emsdeploy.exporters.onnx import export_onnx
    from emsdeploy.pipeline import default_input_size
    from emsdeploy.tracer import trace

    if case == "shipped":
        ckpt_path = Path(checkpoint)
        ckpt = load_any(ckpt_path)
        model = ckpt.build()
        hw = default_input_size(ckpt)
        epochs = (ckpt.meta.get("train") or {}).get("epochs_done")
        shown = ckpt_path.relative_to(REPO) if ckpt_path.is_relative_to(REPO) else ckpt_path
        desc = f"{shown} (trained{f', {epochs} epochs' if epochs else ''}); input: a synthetic validation scene"
    else:
        model = _random_detector(case, size, time_steps, "frames")
        hw = (size, size)
        ckpt_path = work / f"{case}.pt"
        save_checkpoint(ckpt_path, from_model(model))
        desc = f"{case}, random weights, tdBN statistics calibrated then γ, β randomised, objectness prior 0.5"
    x = _scene(hw) if case == "shipped" and model.encoding == "direct" else None
    if x is None:
        x = _input(model.encoding, hw, model.time_steps)
    np.save(work / f"{case}.npy", x)
    onnx_path = work / f"{case}.onnx"
    export_onnx(trace(model, hw), onnx_path)
    return {
        "case": case if case != "shipped" or ckpt_path == SHIPPED else f"trained ({ckpt_path.name})",
        "description": desc,
        "encoding": model.encoding,
        "input_shape": list(x.shape),
        "time_steps": int(model.time_steps if model.encoding == "direct" else x.shape[1]),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "onnx_mb": onnx_path.stat().st_size / 1e6,
        "files": {"torch": str(ckpt_path), "onnx": str(onnx_path), "input": str(work / f"{case}.npy")},
    }


def _run_child(backend: str, info: dict, work: Path, args: argparse.Namespace, k: int, config: str) -> dict:
    threads, nospin = _parse_config(config)
    save = work / f"{info['case']}.{backend}.{config.replace(':', '-')}.{k}.npy"
    cmd = [
        sys.executable, __file__, "--child", backend, "--model", info["files"][backend],
        "--input", info["files"]["input"], "--threads", str(threads), "--repeats", str(args.repeats),
        "--warmup", str(args.warmup), "--save", str(save), *(["--nospin"] if nospin else []),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if nospin:  # OpenMP threads sleep at barriers instead of spinning (torch's pool)
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{backend} child failed on {info['case']}:\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["boxes"] = str(save)
    return out


def _summary(runs: list[dict]) -> dict:
    ms = [v for r in runs for v in r["ms_per_frame"]]
    q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
    return {
        "median_ms_per_frame": statistics.median(ms),
        "min_ms_per_frame": min(ms),
        "p25_ms": q[0],
        "p75_ms": q[2],
        "runs": len(ms),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "rss_after_imports_mb": max(r["rss_libs_mb"] for r in runs),
        "imports_torch": any(r["torch_imported"] for r in runs),
    }


def _agreement(torch_boxes: np.ndarray, onnx_boxes: np.ndarray) -> dict:
    from emsdeploy.exporters.onnx import nms

    a, b = nms(torch_boxes), nms(onnx_boxes)
    same = all(
        len(p) == len(q) and np.array_equal(p.classes, q.classes) and np.allclose(p.boxes, q.boxes, atol=1e-2)
        for p, q in zip(a, b)
    )
    return {
        "max_abs_diff_decoded": float(np.abs(torch_boxes - onnx_boxes).max()),
        "detections": [len(p) for p in a],
        "detections_equal": bool(same),
    }


def _markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Stepwise ONNX vs PyTorch eager",
        "",
        f"{m['cpu']}, {m['cpus']} CPUs; each row gives both backends the same thread count (torch.set_num_threads "
        f"and OMP_NUM_THREADS; onnxruntime intra_op_num_threads), ':nospin' rows make idle threads of both sleep "
        f"(OMP_WAIT_POLICY=PASSIVE; allow_spinning=0); batch 1; load average before/after: "
        f"{m['loadavg_before']} / {m['loadavg_after']} (the machine is shared).",
        f"Each backend ran in {result['rounds']} fresh processes (alternating), {result['repeats']} timed runs "
        f"each after {result['warmup']} warm-up runs. A run = T steps + readout + box decoding (no NMS).",
        "",
        "| model | input | T | threads | torch ms/frame | onnx ms/frame | speed-up (median) | speed-up (best run) "
        "| torch peak MB | onnx peak MB | memory ratio | detections (torch = onnx) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result["cases"]:
        t, o = c["torch"], c["onnx"]
        lines.append(
            f"| {c['case']} | {'×'.join(map(str, c['input_shape']))} | {c['time_steps']} | {c['threads']} | "
            f"{t['median_ms_per_frame']:.1f} ({t['p25_ms']:.1f}–{t['p75_ms']:.1f}) | "
            f"{o['median_ms_per_frame']:.1f} ({o['p25_ms']:.1f}–{o['p75_ms']:.1f}) | {c['speedup']:.2f}× | "
            f"{c['speedup_best']:.2f}× | "
            f"{t['peak_rss_mb']:.0f} | {o['peak_rss_mb']:.0f} | {c['memory_ratio']:.2f}× | "
            f"{sum(c['agreement']['detections'])} ({c['agreement']['detections_equal']}) |"
        )
    lines += [
        "",
        "Medians with quartiles in brackets; 'best run' compares the fastest run of each backend (the one least "
        "disturbed by other load). Peak MB is the process's peak resident set (VmHWM); after the imports alone:",
    ]
    seen = set()
    for c in result["cases"]:
        if c["case"] in seen:
            continue
        seen.add(c["case"])
        lines.append(
            f"- {c['case']}: torch {c['torch']['rss_after_imports_mb']:.0f} MB, onnx "
            f"{c['onnx']['rss_after_imports_mb']:.0f} MB (the onnx process imports torch: {c['onnx']['imports_torch']})."
            f" {c['description']}; {c['parameters']:,} parameters."
        )
    lines += [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def _loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--threads",
        default="2,2:nospin,1",
        help="comma-separated thread configurations, each used by both backends: N threads with the default "
        "(spinning) thread pools, or N:nospin with idle threads sleeping (OMP_WAIT_POLICY=PASSIVE for torch, "
        "allow_spinning=0 for onnxruntime). Default 2,2:nospin,1",
    )
    p.add_argument("--rounds", type=int, default=3, help="fresh processes per backend and case")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per process")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--size", type=int, default=320, help="input size of the res18-ee case")
    p.add_argument("--time-steps", type=int, default=4)
    p.add_argument("--cases", default="shipped,res18-ee")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=SHIPPED,
        help="trained checkpoint of the 'shipped' case (default: the shipped one)",
    )
    p.add_argument("--quick", action="store_true", help="1 round, 2 repeats, 1 warm-up (a smoke run)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--child", choices=["torch", "onnx"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--save", help=argparse.SUPPRESS)
    p.add_argument("--nospin", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return
    if args.quick:
        args.rounds, args.repeats, args.warmup = 1, 2, 1
    thread_counts = [t.strip() for t in str(args.threads).split(",") if t.strip()]
    for config in thread_counts:
        _parse_config(config)
    import onnxruntime
    import torch

    notes = []
    result = {
        "benchmark": "onnx_vs_torch",
        "threads": thread_counts,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "machine": {
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "loadavg_before": _loadavg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "cases": [],
        "notes": notes,
    }
    with tempfile.TemporaryDirectory(prefix="emsdeploy-bench-") as tmp:
        work = Path(tmp)
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            if case == "shipped" and not args.checkpoint.is_file():
                notes.append(f"{args.checkpoint} does not exist yet: the trained-checkpoint case was skipped.")
                print(f"skip: {args.checkpoint} not found", file=sys.stderr)
                continue
            info = _prepare(case, work, args.size, args.time_steps, args.checkpoint)
            files = info.pop("files")
            for threads in thread_counts:
                info["files"] = files
                runs: dict[str, list[dict]] = {"torch": [], "onnx": []}
                for k in range(args.rounds):
                    for backend in ("torch", "onnx"):
                        runs[backend].append(_run_child(backend, info, work, args, k, threads))
                        med = statistics.median(runs[backend][-1]["ms_per_frame"])
                        print(f"{case} {backend} threads {threads}, round {k}: {med:.1f} ms/frame", file=sys.stderr)
                t, o = _summary(runs["torch"]), _summary(runs["onnx"])
                row = {k: v for k, v in info.items() if k != "files"}
                row.update(
                    threads=threads,
                    torch=t,
                    onnx=o,
                    speedup=t["median_ms_per_frame"] / o["median_ms_per_frame"],
                    speedup_best=t["min_ms_per_frame"] / o["min_ms_per_frame"],
                    memory_ratio=t["peak_rss_mb"] / o["peak_rss_mb"],
                    agreement=_agreement(np.load(runs["torch"][0]["boxes"]), np.load(runs["onnx"][0]["boxes"])),
                )
                result["cases"].append(row)
    result["machine"]["loadavg_after"] = _loadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "onnx_vs_torch.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "onnx_vs_torch.md").write_text(_markdown(result))
    print(_markdown(result))


def _parse_config(config: str) -> tuple[int, bool]:
    """``"2"`` -> (2, spinning); ``"2:nospin"`` -> (2, idle threads sleep)."""
    n, _, mode = config.partition(":")
    if not n.isdigit() or int(n) < 1 or mode not in ("", "nospin"):
        raise SystemExit(f"bad --threads item {config!r}: use N or N:nospin")
    return int(n), mode == "nospin"


if __name__ == "__main__":
    main()
