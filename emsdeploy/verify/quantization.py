"""The quantisation report: ref-fixed (Loihi fixed point) against ref-float on the same input.

DESIGN.md §7 asks for spike agreement and output error. Both simulators' records are aligned
(ref-fixed shifts each population by its latency), so population P's step t is compared with
the float LIF's step t. Reported per LIF: spikes on each side, mismatches, agreement
(1 − mismatches / entries) and the first divergent step; overall: agreement over every LIF
entry; per readout: max and mean |Δ| of the time-averaged head outputs; for the decoded boxes:
max |Δ| of objectness and class scores (after the sigmoid) and of box centres in pixels.

Node-isolated agreement (DESIGN.md §7) separates one layer's quantisation from the cascade:
each fixed-point LIF population is fed ref-float's own source values at each step (spikes as
they are, graded values rounded to their integer scale, the input through the host terms) and
its spikes are compared with ref-float's.

Verification already runs ref-fixed on every sample (raw, for the Lava comparison); it hands
that run in (``fixed``), so ref-fixed runs once per sample. A raw run's aligned records equal
the window-only run's (tests/simulators/test_ref_fixed.py pins it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from ..ir import Decode, Graph, Input, Kind
from ..ir.fixed_point import effective_bias, lif_step, wrap
from ..ir.ops.loihi import FixedMaxPool, FixedSiLU, GradedRelay, HostConv, HostSparse, LoihiLIF, SynConv
from ..simulators import RefFixed, RefFloat
from ..simulators.fixed_kernels import conv_payload, graded_conv_payload, host_payload, quantize_input, sparse_payload

if TYPE_CHECKING:
    from ..ir.runtime import Trace

__all__ = ["compare_fixed_float", "format_fixed_float"]


def compare_fixed_float(
    float_graph: Graph,
    fixed_graph: Graph,
    x: torch.Tensor,
    dtype: torch.dtype = torch.float64,
    fixed: tuple[Trace, dict[str, dict[str, int]]] | None = None,
) -> dict[str, Any]:
    """Run both simulators on ``x`` and compare (``float_graph``: the simplified float IR).

    ``fixed``: ref-fixed's run of ``fixed_graph`` on ``x`` with ``record="all"`` and its
    saturation counts (``RefFixed.stats``), when the caller already has it; else it is run here.
    """
    if fixed is None:
        sim = RefFixed(fixed_graph)
        q = sim.run(x, record="all")
        stats = sim.stats
    else:
        q, stats = fixed
    f = RefFloat(float_graph, dtype).run(x, q.time_steps, record="all")
    isolated = _isolated(fixed_graph, f)
    pops: list[dict[str, Any]] = []
    entries = mismatches = 0
    order = [n.name for n in fixed_graph]
    for name in order:
        rec = f.records.get(name, {})
        if "s" not in rec or name not in q.records:
            continue
        a, b = rec["s"].to(torch.float32), q.records[name]["s"]
        diff = a != b
        n, m = int(a.numel()), int(diff.sum())
        steps = diff.reshape(diff.shape[0], -1).any(1).nonzero()
        pops.append(
            {
                "name": name,
                "float_spikes": int(a.sum()),
                "fixed_spikes": int(b.sum()),
                "mismatches": m,
                "agreement": 1 - m / n,
                "first_divergent_step": int(steps[0]) if len(steps) else None,
                "firing_rate": float(a.mean()),
                "isolated_agreement": isolated.get(name),
            }
        )
        entries += n
        mismatches += m
    outputs: dict[str, Any] = {}
    for o, v in q.outputs.items():
        ref = f.outputs[o].to(torch.float64)
        got = v.to(torch.float64)
        if isinstance(fixed_graph[o].op, Decode):
            outputs[o] = {
                "scores_max_abs": float((ref[..., 4:] - got[..., 4:]).abs().max()),
                "xy_max_abs_px": float((ref[..., :2] - got[..., :2]).abs().max()),
                "wh_max_abs_px": float((ref[..., 2:4] - got[..., 2:4]).abs().max()),
            }
        else:
            d = (ref - got).abs()
            outputs[o] = {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "range": float(ref.abs().max())}
    iso = [p["isolated_agreement"] for p in pops if p["isolated_agreement"] is not None]
    return {
        "agreement": 1 - mismatches / max(1, entries),
        "isolated_agreement": float(np.mean(iso)) if iso else None,
        "entries": entries,
        "mismatches": mismatches,
        "populations": pops,
        "outputs": outputs,
        "saturation": {k: v for k, v in stats.items() if any(v.values())},
    }


def _isolated(fixed: Graph, f: Any) -> dict[str, float]:
    """Node-isolated spike agreement of every LIF population (see the module docstring)."""
    p = dict(fixed.attrs["loihi"])
    in_scale = float(fixed.attrs.get("input_scale", 255.0))
    out: dict[str, float] = {}
    for node in fixed:
        op = node.op
        if not isinstance(op, LoihiLIF) or node.name not in f.records or "s" not in f.records[node.name]:
            continue
        want = f.records[node.name]["s"]
        T = want.shape[0]
        u = v = np.zeros(tuple(want.shape[1:]), np.int64)
        bias = effective_bias(op)
        bad = 0
        if any(_float_source(fixed, fixed[i].inputs[0], f) is None for i in node.inputs):
            continue  # reads a relayed current ref-float did not record: not isolated
        for t in range(T):
            a = torch.zeros(want.shape[1:], dtype=torch.int64)
            for i in node.inputs:
                term = fixed[i]
                top: Any = term.op  # a synapse group or host term of a population
                src = term.inputs[0]
                src, relay_scale = _float_source(fixed, src, f)  # type: ignore[misc]
                rec = f.records[src]
                if isinstance(fixed[src].op, Input):
                    w: Any = _weights(top)
                    a = a + host_payload(top, w, quantize_input(rec["y"][t], in_scale))
                    continue
                if fixed.kind(src) == Kind.SPIKE:
                    xs = rec["s"][t].to(torch.int64)
                else:  # graded: the float value at the source's output scale
                    sop = fixed[src].op
                    scale = sop.scale_out if isinstance(sop, (FixedMaxPool, FixedSiLU)) else 1.0
                    scale = relay_scale or scale
                    xs = torch.round(rec["y"][t].to(torch.float64) * scale).to(torch.int64)
                if isinstance(top, SynConv) and fixed.kind(term.inputs[0]) != Kind.SPIKE:
                    w64 = torch.from_numpy(top.effective_weight().astype(np.float64))
                    a = a + graded_conv_payload(top, w64, xs, p)
                elif isinstance(top, SynConv):
                    a = a + conv_payload(top, torch.from_numpy(top.weight_s8.astype(np.float32)), xs, p)
                else:
                    a = a + sparse_payload(top, _weights(top), xs, p)
            s, u, v = lif_step(op, wrap(a.numpy(), 32), u, v, bias, p)
            bad += int((torch.from_numpy(s).to(want.dtype) != want[t]).sum())
        out[node.name] = 1 - bad / want.numel()
    return out


def _float_source(fixed: Graph, src: str, f: Any) -> tuple[str, float | None] | None:
    """(the float node whose recorded value feeds ``src``, the relay's scale or None) through
    delay relays and GradedVec relays; None when ref-float has no record of it."""
    while "relay_delay" in fixed[src].meta:  # a delay relay re-emits its source's values
        src = fixed[fixed[src].inputs[0]].inputs[0]
    scale = None
    relay = fixed[src].op
    if isinstance(relay, GradedRelay):
        scale = relay.scale
        if src.endswith("@relay"):
            src = src[: -len("@relay")]
    if src not in f.records or not ({"s", "y"} & set(f.records[src])):
        return None
    return src, scale


def _weights(op: Any) -> Any:
    if isinstance(op, HostConv):
        return torch.from_numpy(op.weight_s24.astype(np.float64))
    data = op.weight_s24 if isinstance(op, HostSparse) else op.weight_s8
    return sp.csr_matrix(
        (data.astype(np.int64), op.indices, op.indptr), shape=(int(np.prod(op.out_shape)), int(np.prod(op.in_shape)))
    )


def format_fixed_float(report: dict[str, Any]) -> str:
    iso = report.get("isolated_agreement")
    lines = [
        f"spike agreement {report['agreement']:.5f} ({report['mismatches']} of {report['entries']} LIF entries differ)"
        + (f"; node-isolated {iso:.5f} (mean over populations)" if iso is not None else ""),
        f"{'population':<34} {'float':>7} {'fixed':>7} {'mismatch':>8} {'agree':>8} {'isolated':>8} {'first t':>7} {'rate':>6}",
    ]
    for p in report["populations"]:
        first = p["first_divergent_step"] if p["first_divergent_step"] is not None else "-"
        isol = f"{p['isolated_agreement']:.5f}" if p["isolated_agreement"] is not None else "-"
        lines.append(
            f"{p['name']:<34} {p['float_spikes']:>7} {p['fixed_spikes']:>7} {p['mismatches']:>8} "
            f"{p['agreement']:>8.5f} {isol:>8} {first:>7} {p['firing_rate']:>6.3f}"
        )
    for o, v in report["outputs"].items():
        lines.append(f"{o}: " + ", ".join(f"{k} {x:.4g}" for k, x in v.items()))
    lines.append(f"u wraps / v saturations: {report['saturation'] or 'none'}")
    return "\n".join(lines)
