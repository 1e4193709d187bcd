"""The quantisation report: ref-fixed (Loihi fixed point) against ref-float on the same input.

DESIGN.md §7 asks for spike agreement and output error. Both simulators' records are aligned
(ref-fixed shifts each population by its latency), so population P's step t is compared with
the float LIF's step t. Reported per LIF: spikes on each side, mismatches, agreement
(1 − mismatches / entries) and the first divergent step; overall: agreement over every LIF
entry; per readout: max and mean |Δ| of the time-averaged head outputs; for the decoded boxes:
max |Δ| of objectness and class scores (after the sigmoid) and of box centres in pixels.
"""

from __future__ import annotations

from typing import Any

import torch

from emsdeploy.ir import Decode, Graph

from .ref_fixed import RefFixed
from .ref_float import RefFloat

__all__ = ["compare_fixed_float", "format_fixed_float"]


def compare_fixed_float(
    float_graph: Graph, fixed_graph: Graph, x: torch.Tensor, dtype: torch.dtype = torch.float64
) -> dict[str, Any]:
    """Run both simulators on ``x`` and compare (``float_graph``: the simplified float IR)."""
    f = RefFloat(float_graph, dtype).run(x, record="neurons")
    sim = RefFixed(fixed_graph)
    q = sim.run(x, record="all")
    pops: list[dict[str, Any]] = []
    entries = mismatches = 0
    for name, rec in f.records.items():
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
    return {
        "agreement": 1 - mismatches / max(1, entries),
        "entries": entries,
        "mismatches": mismatches,
        "populations": pops,
        "outputs": outputs,
        "saturation": {k: v for k, v in sim.stats.items() if any(v.values())},
    }


def format_fixed_float(report: dict[str, Any]) -> str:
    lines = [
        f"spike agreement {report['agreement']:.5f} ({report['mismatches']} of {report['entries']} LIF entries differ)",
        f"{'population':<34} {'float':>7} {'fixed':>7} {'mismatch':>8} {'agree':>8} {'first t':>7} {'rate':>6}",
    ]
    for p in report["populations"]:
        lines.append(
            f"{p['name']:<34} {p['float_spikes']:>7} {p['fixed_spikes']:>7} {p['mismatches']:>8} "
            f"{p['agreement']:>8.5f} {p['first_divergent_step'] if p['first_divergent_step'] is not None else '-':>7} {p['firing_rate']:>6.3f}"
        )
    for o, v in report["outputs"].items():
        lines.append(f"{o}: " + ", ".join(f"{k} {x:.4g}" for k, x in v.items()))
    lines.append(f"u wraps / v saturations: {report['saturation'] or 'none'}")
    return "\n".join(lines)
