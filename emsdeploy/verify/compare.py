"""Element-by-element comparison of two runs' spike tensors (DESIGN.md §7).

A comparison reports, per neuron node: spike counts on both sides, mismatches, the first
divergent step, firing rates and the largest membrane difference where both membranes are
visible. Float comparisons classify mismatches against the reference membrane: a mismatch
is excused as ``near_threshold`` only where the reference membrane lies within
``margin·|V_th|`` of V_th, and only where it can be attributed to that node alone — in a
node-isolated run, or at the very first divergence of an end-to-end run (everything upstream
is still identical there). Integer comparisons excuse nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = ["DEFAULT_MARGIN", "Comparison", "NodeComparison", "compare_records", "merge"]

DEFAULT_MARGIN = 1e-5  # relative to V_th


@dataclass
class NodeComparison:
    node: str
    numel: int
    spikes_a: int
    spikes_b: int
    mismatches: int
    first_step: int | None
    first_index: list[int] | None  # (batch, channel, y, x) of the first mismatch at first_step
    rate_a: float
    rate_b: float
    max_du: float | None = None
    near_threshold: int = 0  # mismatches where the reference membrane is within the margin
    first_near_threshold: bool = False  # every mismatch at first_step is within the margin
    sample: int = 0  # input sample of the first mismatch

    @property
    def unexcused(self) -> int:
        return self.mismatches - self.near_threshold


@dataclass
class Comparison:
    """One pair of levels compared: ``a`` is the reference, ``b`` the level under test."""

    a: str
    b: str
    mode: str  # "end-to-end" | "isolated"
    integer: bool
    nodes: list[NodeComparison]
    outputs: dict[str, float] = field(default_factory=dict)  # max |Δ| per graph output
    order: dict[str, int] = field(default_factory=dict, repr=False)
    note: str = ""

    @property
    def mismatches(self) -> int:
        return sum(n.mismatches for n in self.nodes)

    @property
    def spikes_compared(self) -> int:
        return sum(n.numel for n in self.nodes)

    @property
    def exact(self) -> bool:
        return self.mismatches == 0

    @property
    def near_threshold(self) -> int:
        return sum(n.near_threshold for n in self.nodes) if self.mode == "isolated" else 0

    def _first(self) -> NodeComparison | None:
        bad = [n for n in self.nodes if n.mismatches]
        if not bad:
            return None
        return min(bad, key=lambda n: (n.sample, n.first_step, self.order.get(n.node, 0)))

    @property
    def first_divergence(self) -> dict[str, Any] | None:
        first = self._first()
        if first is None:
            return None
        return {"node": first.node, "step": first.first_step, "index": first.first_index, "sample": first.sample}

    @property
    def ok(self) -> bool:
        """Integer pairs: exact. Float pairs: every isolated mismatch, and the first end-to-end
        divergence, lies within the margin of V_th (later end-to-end ones are its cascade)."""
        if self.exact:
            return True
        if self.integer:
            return False
        if self.mode == "isolated":
            return all(n.unexcused == 0 for n in self.nodes)
        first = self._first()
        return first is not None and first.first_near_threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "mode": self.mode,
            "integer": self.integer,
            "exact": self.exact,
            "ok": self.ok,
            "mismatches": self.mismatches,
            "spikes_compared": self.spikes_compared,
            "near_threshold": self.near_threshold,
            "first_divergence": self.first_divergence,
            "outputs_max_abs_diff": self.outputs,
            "note": self.note,
            "nodes": [asdict(n) for n in self.nodes],
        }


def compare_records(
    a_name: str,
    b_name: str,
    a: Mapping[str, Mapping[str, torch.Tensor]],
    b: Mapping[str, Mapping[str, torch.Tensor]],
    nodes: Sequence[str],
    *,
    integer: bool,
    mode: str = "end-to-end",
    v_th: Mapping[str, float | tuple[float, ...]] | None = None,
    margin: float = DEFAULT_MARGIN,
    sample: int = 0,
) -> Comparison:
    """Compare the ``"s"`` records of ``nodes`` (in topological order) between ``a`` (reference) and ``b``.

    Float levels compare spikes as booleans. Integer levels compare the recorded integers
    themselves (spikes, graded values, integrator state), so any difference is a mismatch.
    """
    rows = []
    for name in nodes:
        sa, sb = torch.as_tensor(a[name]["s"]), torch.as_tensor(b[name]["s"])
        if not integer:  # float levels: 0/1 spikes in any dtype
            sa, sb = sa.to(torch.bool), sb.to(torch.bool)
        if sa.shape != sb.shape:
            raise ValueError(f"{name}: spike tensors differ in shape {tuple(sa.shape)} vs {tuple(sb.shape)}")
        diff = sa != sb
        n_bad = int(diff.sum())
        first_step = first_index = None
        step0 = 0
        near = 0
        first_near = False
        if n_bad:
            first_step = int(diff.flatten(1).any(1).nonzero()[0])
            step0 = int(a[name].get("t0", 0))  # records that start later (a final integrator state)
            first_index = [int(v) for v in diff[first_step].nonzero()[0]]
            if not integer and v_th is not None and "u" in a[name]:
                u = a[name]["u"].double()
                # one threshold for a LIF; an I-LIF's output steps at every k + 0.5 (its rounding)
                edge = v_th[name]
                ths: tuple[float, ...] = edge if isinstance(edge, tuple) else (edge,)
                close = torch.zeros_like(u, dtype=torch.bool)
                for th in ths:
                    close |= (u - float(th)).abs() <= margin * abs(float(th))
                near = int((diff & close).sum())
                first_near = bool(close[first_step][diff[first_step]].all())
        max_du = None
        if "u" in a[name] and "u" in b[name] and tuple(a[name]["u"].shape) == tuple(b[name]["u"].shape):
            max_du = float((a[name]["u"].double() - torch.as_tensor(b[name]["u"]).double()).abs().max())
        numel = sa.numel()
        na, nb = int(torch.count_nonzero(sa)), int(torch.count_nonzero(sb))  # spikes (or nonzero values)
        rows.append(
            NodeComparison(
                name, numel, na, nb, n_bad, None if first_step is None else first_step + step0, first_index, na / numel, nb / numel,
                max_du, near, first_near, sample,
            )
        )  # fmt: skip
    return Comparison(a_name, b_name, mode, integer, rows, order={n: i for i, n in enumerate(nodes)})


def merge(parts: Sequence[Comparison]) -> Comparison:
    """Sum per-sample comparisons of the same pair (counts add; the earliest divergence wins)."""
    first = parts[0]
    nodes = []
    for i, n0 in enumerate(first.nodes):
        rows = [p.nodes[i] for p in parts]
        bad = [r for r in rows if r.mismatches]
        lead = min(bad, key=lambda r: (r.sample, r.first_step)) if bad else n0
        numel = sum(r.numel for r in rows)
        sa, sb = sum(r.spikes_a for r in rows), sum(r.spikes_b for r in rows)
        dus = [r.max_du for r in rows if r.max_du is not None]
        nodes.append(
            NodeComparison(
                n0.node, numel, sa, sb, sum(r.mismatches for r in rows), lead.first_step, lead.first_index,
                sa / numel, sb / numel, max(dus) if dus else None, sum(r.near_threshold for r in rows),
                lead.first_near_threshold, lead.sample,
            )
        )  # fmt: skip
    outputs: dict[str, float] = {}
    for p in parts:
        for k, v in p.outputs.items():
            outputs[k] = max(outputs.get(k, 0.0), v)
    return Comparison(first.a, first.b, first.mode, first.integer, nodes, outputs, first.order, first.note)
