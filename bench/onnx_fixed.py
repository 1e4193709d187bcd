"""Benchmark: float stepwise ONNX vs fixed-point (Loihi-exact) ONNX vs ref-fixed, per inference.

Models: res18-ee at 320×320, T = 5 (random BN statistics that make the LIFs fire, direct input)
and the shipped checkpoint at its size. One process loads the three backends at one and two
threads, then times whole inferences (all T steps; for the fixed graph the T calls of its aligned
timing, readouts included; no NMS) in alternating rounds so that every backend sees the same
machine load. Reported: median ms per inference with quartiles, and the ratios. A per-layer
table times each chip conv of spikes alone with each exact kernel (``ConvInteger``, float
``Conv``, the gathered ``MatMulInteger``), one thread; onnxruntime's profile by operator type of the float, fixed and floor (below) graphs. The fixed graph and
ref-fixed are checked to agree bit for bit first.

A lower bound rides along (``fixed-floor``, NOT exact, timing only): the fixed graph with every
LIF population's Loihi arithmetic replaced by the least any LIF update does — decay by a
multiply, integrate, fire, reset (six elementwise passes: Mul, Add, Greater, and LessOrEqual, Cast, Mul for the reset; the float graph's update with its ``Where`` as a
mask) — and everything else (the exact convolution kernels, the stem, the terms' scaling, the
pools, the input guard) as exported. An exact lowering must add the truncation of the decay,
the bias, and the 24-bit wrap and the saturation where reachable, so no exact graph built on
these kernels runs faster than this one. ``fixed-floor-nhwc`` bounds a whole-graph NHWC layout
the same way: the floor graph with every ungrouped spike conv as an NHWC ``MatMulInteger``
(gathered im2col; a 1×1 conv a plain ``MatMulInteger``) whose layout changes are free
``Reshape``s (the data is scrambled: timing only), which is what any NHWC graph pays at least.

Usage: ``python bench/onnx_fixed.py [--quick] [--rounds 5] [--models res18-ee,shipped] [--threads 1,2]``.
Results: ``bench/results/onnx_fixed.{json,md}`` with the CPU model and flags and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from common import cpu_info, firing_bn, save_results

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHIPPED = REPO / "models" / "checkpoints" / "emsyolo-tiny-synth.pt"


def _res18(size: int, time_steps: int):
    import torch

    from emsdeploy.models import EMSYOLO, build_model
    from emsdeploy.tracer import trace

    torch.manual_seed(0)
    model = EMSYOLO({**build_model("res18-ee").config, "ch": 3}, time_steps, "direct")
    return trace(firing_bn(model), (size, size))  # BN statistics that make the LIFs fire, as a trained model's do


def _graph(name: str, size: int):
    if name == "shipped":
        from emsdeploy.pipeline import load_graph

        return load_graph(SHIPPED, None, None).graph
    return _res18(size, 5)


def _floor_lif(b, node, terms):
    """The least work of any LIF update (see the module docstring): NOT Loihi-exact."""
    from emsdeploy.exporters.onnx import fixed_fast_onnx as ff
    from emsdeploy.exporters.onnx.fixed_kernels_onnx import BOOL, F32, Value
    from emsdeploy.ir.ops.loihi import LoihiReadout

    name, half = node.name, 1 << (b.p["uv_bits"] - 1)
    a = ff._fl(b, ff.add(b, ff.emit_terms(b, node, terms, b.p["act_shift"]), name), F32)
    v_in, v_out = b.state(f"{name}.v", node.op.in_shape(), F32)
    pre = b.op("Add", [b.op("Mul", [v_in, ff._const_f(b, 0.25, F32)], f"{name}/decay"), a], f"{name}/pre")
    vth = ff._const_f(b, node.op.vth_u17 << b.p["vth_shift"], F32)
    keep = b.op("Cast", [b.op("LessOrEqual", [pre, vth], f"{name}/keep")], f"{name}/keepf", to=F32)
    b.op_to("Mul", [pre, keep], v_out)
    if isinstance(node.op, LoihiReadout):
        return Value(v_out, F32, half - 1), v_out
    return Value(b.op("Greater", [pre, vth], f"{name}/fire"), BOOL, 1), v_out


def _nhwc_matmul_integer(b, x: str, w: np.ndarray, in_shape, op, hint: str) -> str:
    """A spike conv's cost in an NHWC graph: the gathered ``MatMulInteger`` on an NHWC input
    (a 1×1 conv: the ``MatMulInteger`` alone), the layout changes as free ``Reshape``s. NOT
    exact (the data is scrambled)."""
    from emsdeploy.exporters.onnx.fixed_kernels_onnx import I64, nhwc_matmul_integer

    c, h, wd = (int(v) for v in in_shape)
    o = int(w.shape[0])
    xt = b.op("Reshape", [x, b.const([0, h, wd, c], I64)], f"{hint}/nhwc")
    acc, ho, wo = nhwc_matmul_integer(b, xt, w, in_shape, op, hint)
    if o % 16:
        acc = b.op("Slice", [acc, b.const([0], I64), b.const([o], I64), b.const([2], I64)], f"{hint}/width")
    return b.op("Reshape", [acc, b.const([0, o, ho, wo], I64)], f"{hint}/out")


def floor_graph(q, nhwc: bool = False) -> bytes:
    """The lower-bound graph (:func:`_floor_lif` for every LIF and readout; with ``nhwc``, every
    ungrouped spike conv as :func:`_nhwc_matmul_integer`). Not exact: timing only."""
    from contextlib import ExitStack
    from unittest import mock

    from emsdeploy.exporters.onnx import fixed_fast_onnx as ff
    from emsdeploy.exporters.onnx.fixed import build_fixed_onnx
    from emsdeploy.ir.ops.loihi import LoihiReadout

    exported = ff._lif

    def floor_lif(b, node, terms):
        if ff.is_spike_relay(b, node, sum(t.bound for t in terms)):
            return exported(b, node, terms)  # a relay's exported form is already less than the floor's
        return _floor_lif(b, node, terms)

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(ff, "_lif", floor_lif))
        stack.enter_context(mock.patch.dict(ff.FAST_LOWERINGS, {LoihiReadout: _floor_lif}))
        if nhwc:
            stack.enter_context(mock.patch.object(ff, "gathered_matmul_integer", _nhwc_matmul_integer))
            stack.enter_context(mock.patch.object(ff, "_gathered_matmul_pays", lambda op, w, out: op.groups == 1))
        return build_fixed_onnx(q).SerializeToString()


def _time(fn, n: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def layer_table(q, rounds: int) -> list[dict]:
    """Each chip conv of spikes alone, once per kernel, one thread: ms per call."""
    import onnxruntime as ort
    from onnx import helper

    from emsdeploy.exporters.onnx.fixed_kernels_onnx import (
        BOOL,
        SPIKE_CONV_KERNELS,
        FixedBuilder,
        Value,
        spike_conv_bound,
    )
    from emsdeploy.ir import Kind
    from emsdeploy.ir.ops.loihi import SynConv

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    rows = []
    rng = np.random.default_rng(0)
    for node in q:
        if not isinstance(node.op, SynConv) or q.kind(node.inputs[0]) != Kind.SPIKE:
            continue
        shape = q.shape(node.inputs[0])
        x = (rng.random((1, *shape)) < 0.18).astype(np.bool_)  # the shipped model's firing rate
        row = {"layer": node.name, "in": list(shape), "out": list(q.shape(node.name)),
               "kernel": list(node.op.weight_s8.shape[2:]), "bound": spike_conv_bound(node.op)}  # fmt: skip
        for kname, fn in SPIKE_CONV_KERNELS.items():
            b = FixedBuilder(q)
            out = fn(b, node, Value("s", BOOL, 1))
            g = helper.make_graph(
                b.nodes, "k", [helper.make_tensor_value_info("s", BOOL, [1, *shape])],
                [helper.make_tensor_value_info(out, 6, None)], initializer=b.inits,
            )  # fmt: skip
            m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
            sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            sess.run(None, {"s": x})
            call = (lambda s, feed: lambda: s.run(None, feed))(sess, {"s": x})
            row[kname] = round(1e3 * min(_time(call) for _ in range(rounds)), 3)
        rows.append(row)
    return rows


def _layer_of(node: str) -> str:
    """The population or synapse group an ONNX node of the fixed graph belongs to (by its name)."""
    while node.startswith(("fast/", "int/")):
        node = node.split("/", 1)[1]
    if node.startswith(("state_out.", "head.", "out.")):
        node = node.split(".", 1)[1].rsplit(".", 1)[0] if node.startswith("state_out.") else node
    head = node.split("/", 1)[0].split("#", 1)[0]
    return "input quantization and bound check" if head in ("x", "batch") else head


def _profile(model_bytes: bytes, x: np.ndarray, time_steps: int) -> list[dict]:
    """onnxruntime's kernel events (``If`` left out: its time is its branch's nodes) of one
    inference: T stepwise calls, one thread, after a warm-up call (allocations, weight packing)."""
    import tempfile

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        dtypes = {"tensor(uint8)": np.uint8, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
                  "tensor(double)": np.float64, "tensor(float)": np.float32}  # fmt: skip
        zeros = {i.name: np.zeros([x.shape[0], *i.shape[1:]], dtypes[i.type])
                 for i in sess.get_inputs() if i.name.startswith("state_in.")}  # fmt: skip
        names = [o.name for o in sess.get_outputs()]
        sess.run(None, {"x": x, **zeros})
        feed = {"x": x, **zeros}
        for _ in range(time_steps):
            for n, v in zip(names, sess.run(None, feed), strict=True):
                if n.startswith("state_out."):
                    feed[n.replace("state_out.", "state_in.", 1)] = v
        events = json.loads(Path(sess.end_profiling()).read_text())
    runs = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    start = runs[1] if len(runs) > 1 else 0
    return [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
            and e["ts"] >= start and e["args"]["op_name"] != "If"]  # fmt: skip


def layer_profile(model_bytes: bytes, x: np.ndarray, time_steps: int, kernels: dict) -> list[dict]:
    """The fixed graph's profile (:func:`_profile`) in ms per layer, its kernel named."""
    per: dict[str, float] = {}
    for e in _profile(model_bytes, x, time_steps):
        layer = _layer_of(e["name"].removesuffix("_kernel_time"))
        per[layer] = per.get(layer, 0.0) + e["dur"] / 1e3
    total = sum(per.values())
    return [{"layer": k, "ms": round(v, 2), "share": round(v / total, 3), "kernel": kernels.get(k, "")}
            for k, v in sorted(per.items(), key=lambda kv: -kv[1])]  # fmt: skip


def op_profile(model_bytes: bytes, x: np.ndarray, time_steps: int) -> dict[str, dict]:
    """A graph's profile (:func:`_profile`) by operator type: ms, and calls per step."""
    ms: dict[str, float] = {}
    calls: dict[str, int] = {}
    for e in _profile(model_bytes, x, time_steps):
        op = e["args"]["op_name"]
        ms[op] = ms.get(op, 0.0) + e["dur"] / 1e3
        calls[op] = calls.get(op, 0) + 1
    return {op: {"ms": round(v, 2), "per_step": calls[op] // time_steps}
            for op, v in sorted(ms.items(), key=lambda kv: -kv[1])}  # fmt: skip


def bench_model(name: str, size: int, rounds: int, threads: tuple[int, ...]) -> dict:
    import torch

    from emsdeploy.exporters.onnx import StepwiseSession, build_onnx
    from emsdeploy.exporters.onnx.fixed import build_fixed_onnx, fixed_graph
    from emsdeploy.exporters.onnx.fixed_runtime import FixedSession
    from emsdeploy.simulators.ref_fixed import RefFixed

    graph = _graph(name, size)
    q = fixed_graph(graph)
    T = graph.time_steps
    shape = graph.input_node().op.shape
    x = torch.rand(1, *shape, generator=torch.Generator().manual_seed(1))
    float_bytes = build_onnx(graph).SerializeToString()
    fixed_model = build_fixed_onnx(q)
    fixed_bytes = fixed_model.SerializeToString()
    floor_bytes = floor_graph(q)  # not exact: a lower bound on any exact graph's time (module docstring)
    floor_nhwc = floor_graph(q, nhwc=True)  # the same bound for an NHWC graph
    kernels = json.loads({p.key: p.value for p in fixed_model.metadata_props}["kernels"])
    # exactness first: the fixed graph against ref-fixed, every valid step of every population
    check = build_fixed_onnx(q, record=True).SerializeToString()
    got = FixedSession(check, threads=1).run(x, record="all")
    ref = RefFixed(q).run(x, record="all")
    mismatches = entries = 0
    for pop, rec in ref.records.items():
        for key, want in rec.items():
            g = np.asarray(got.records[pop][key], np.int64)
            mismatches += int(np.count_nonzero(g != np.asarray(want, np.int64)))
            entries += g.size
    backends = {}
    for t in threads:
        backends[f"float-onnx/{t}t"] = (lambda s: lambda: s.run(x.numpy()))(
            StepwiseSession(float_bytes, threads=t, spin=False)
        )
        backends[f"fixed-onnx/{t}t"] = (lambda s: lambda: s.run(x))(FixedSession(fixed_bytes, threads=t))
        backends[f"fixed-floor/{t}t"] = (lambda s: lambda: s.run(x))(FixedSession(floor_bytes, threads=t))
        backends[f"fixed-floor-nhwc/{t}t"] = (lambda s: lambda: s.run(x))(FixedSession(floor_nhwc, threads=t))
        backends[f"ref-fixed/{t}t"] = (lambda r: lambda: r.run(x))(RefFixed(q, threads=t))
    for fn in backends.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in backends}
    cpu: dict[str, list[float]] = {k: [] for k in backends}  # process CPU time: less sensitive to load
    for _ in range(rounds):
        for k, fn in backends.items():
            c0 = time.process_time()
            times[k].append(1e3 * _time(fn))
            cpu[k].append(1e3 * (time.process_time() - c0))
    summary = {}
    for k, ts in times.items():
        qs = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
        summary[k] = {"median_ms": round(statistics.median(ts), 1), "q1": round(qs[0], 1), "q3": round(qs[2], 1),
                      "cpu_ms": round(statistics.median(cpu[k]), 1)}  # fmt: skip
    ratios = {
        f"float/fixed {t}t": round(
            summary[f"float-onnx/{t}t"]["median_ms"] / summary[f"fixed-onnx/{t}t"]["median_ms"], 2
        )
        for t in threads
    }
    ratios.update({
        f"float/fixed {t}t (CPU time)": round(
            summary[f"float-onnx/{t}t"]["cpu_ms"] / summary[f"fixed-onnx/{t}t"]["cpu_ms"], 2
        )
        for t in threads
    })  # fmt: skip
    ratios.update({
        f"float/{floor} {t}t (lower bound, not exact)": round(
            summary[f"float-onnx/{t}t"]["median_ms"] / summary[f"{floor}/{t}t"]["median_ms"], 2
        )
        for t in threads for floor in ("fixed-floor", "fixed-floor-nhwc")
    })  # fmt: skip
    ratios.update({
        f"ref-fixed/fixed {t}t": round(summary[f"ref-fixed/{t}t"]["median_ms"] / summary[f"fixed-onnx/{t}t"]["median_ms"], 2)
        for t in threads
    })  # fmt: skip
    return {
        "model": name,
        "input": list(shape),
        "time_steps": T,
        "latency_steps": int(q.attrs["latency"]),
        "rounds": rounds,
        "per_inference_ms": summary,
        "ratios": ratios,
        "exact": {"entries": entries, "mismatches": mismatches},
        "kernels": kernels,
        "fast_path": json.loads({p.key: p.value for p in fixed_model.metadata_props}["fast_path"]),
        "profile": layer_profile(fixed_bytes, x.numpy(), T, kernels),
        "op_profile": {
            "float": op_profile(float_bytes, x.numpy(), T),
            "fixed": op_profile(fixed_bytes, x.numpy(), T),
            "floor": op_profile(floor_bytes, x.numpy(), T),
        },
        "layers": layer_table(q, 3) if name != "shipped" else [],
    }


def _cpu() -> dict:
    import onnxruntime

    info = cpu_info()
    # what onnxruntime's int8 kernels (MLAS) dispatch on: AVX2, AVX-512, VNNI, AMX
    int8 = sorted(
        {
            f
            for f in info.get("flags", "").split()
            if f in ("avx2", "fma") or f.startswith(("avx512", "avx_vnni", "amx"))
        }
    )
    return {**info, "int8_flags": int8, "onnxruntime": onnxruntime.__version__, "loadavg_before": os.getloadavg()}


def _markdown(res: dict) -> str:
    lines = ["# float ONNX vs fixed ONNX vs ref-fixed (ms per inference, all T steps)", ""]
    lines.append(f"CPU: {res['cpu'].get('cpu')}; onnxruntime {res['cpu'].get('onnxruntime')}; "
                 f"load average before/after {res['cpu']['loadavg_before']} / {res['loadavg_after']}")  # fmt: skip
    lines.append(f"{res['cpu'].get('cores')} cores; SIMD flags: {' '.join(res['cpu'].get('int8_flags', []))}")
    for m in res["models"]:
        lines += ["", f"## {m['model']} {m['input']} T={m['time_steps']} (exact: {m['exact']})", ""]
        lines += ["| backend | median ms | q1 | q3 | CPU ms |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['median_ms']} | {v['q1']} | {v['q3']} | {v.get('cpu_ms', '')} |"
                  for k, v in m["per_inference_ms"].items()]  # fmt: skip
        lines += ["", "ratios: " + ", ".join(f"{k} = {v}" for k, v in m["ratios"].items())]
        lines += ["", f"fast path: {m.get('fast_path')}"]
        if m.get("profile"):
            lines += ["", "Fixed graph, onnxruntime profile of one inference (T calls, one thread), by layer:", "",
                      "| layer | ms | share | kernel |", "|---|---|---|---|"]  # fmt: skip
            lines += [f"| {r['layer']} | {r['ms']} | {r['share']:.1%} | {r['kernel']} |" for r in m["profile"]]
        if m.get("op_profile"):
            graphs = [g for g in ("float", "fixed", "floor") if g in m["op_profile"]]
            lines += ["", "onnxruntime profile of one inference (T calls, one thread) by operator type, ms "
                      "(calls per step); floor: the lower-bound graph, not exact:", "",
                      "| op | " + " | ".join(f"{g} graph" for g in graphs) + " |", "|---|" + "---|" * len(graphs)]  # fmt: skip
            profs = [m["op_profile"][g] for g in graphs]
            ops = sorted(set().union(*profs), key=lambda o: -max(d.get(o, {}).get("ms", 0) for d in profs))
            lines += [f"| {op} | " + " | ".join(f"{d[op]['ms']} ({d[op]['per_step']})" if op in d else "" for d in profs)
                      + " |" for op in ops]  # fmt: skip
            lines.append(
                "| total | " + " | ".join(str(round(sum(v["ms"] for v in d.values()), 1)) for d in profs) + " |"
            )
        if m["layers"]:
            names = [k for k in m["layers"][0] if k not in ("layer", "in", "out", "kernel", "bound")]
            lines += ["", "Each chip conv of spikes alone, each exact kernel, ms per call (one thread):", "",
                      "| layer | in | out | k | Σ|m| bound | " + " | ".join(f"{k} ms" for k in names) + " |",
                      "|---|---|---|---|---|" + "---|" * len(names)]  # fmt: skip
            lines += [f"| {r['layer']} | {r['in']} | {r['out']} | {r['kernel']} | {r['bound']} | "
                      + " | ".join(str(r[k]) for k in names) + " |" for r in m["layers"]]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="res18-ee,shipped")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--quick", action="store_true", help="shipped model only, 2 rounds")
    ap.add_argument("--threads", default="1,2", help="thread counts to time (default 1,2)")
    args = ap.parse_args(argv)
    names = ["shipped"] if args.quick else args.models.split(",")
    rounds = 2 if args.quick else args.rounds
    res = {"cpu": _cpu(), "models": []}
    for name in names:
        res["models"].append(bench_model(name, args.size, rounds, tuple(int(t) for t in args.threads.split(","))))
        print(json.dumps({k: v for k, v in res["models"][-1].items() if k not in ("kernels", "layers")}), flush=True)
    res["loadavg_after"] = os.getloadavg()
    save_results("onnx_fixed", res, _markdown(res))
    print(_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
