"""Spike comparison of a reference run and a stepwise-ONNX run (DESIGN.md §7, level "onnx").

Works on any two Trace-like results (``records[node]["s"]`` as numpy arrays or torch tensors),
so it needs neither the simulators nor torch. The excuse rule is the one of §7: in a
node-isolated run, a mismatch is excused only where the reference membrane lies within
``margin · V_th`` of the threshold (``near_threshold``); every other mismatch is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .contract import NeuronInfo

__all__ = ["DEFAULT_MARGIN", "NodeReport", "compare_spikes", "format_reports"]

DEFAULT_MARGIN = 1e-5  # relative to V_th (DESIGN.md §7); never widen it to make a test pass


@dataclass
class NodeReport:
    """Spike agreement of one LIF node over a run.

    Attributes:
        mismatches: elements where the spikes differ.
        near_threshold: of those, how many have a reference membrane within the margin of V_th
            (only known when the reference recorded ``u``).
        errors: mismatches that are not near threshold.
        first_step: first time step with a mismatch (None when equal).
    """

    name: str
    spikes_ref: int
    spikes_other: int
    mismatches: int
    near_threshold: int
    errors: int
    first_step: int | None
    rate_ref: float
    rate_other: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _np(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def compare_spikes(
    reference: Any, other: Any, neurons: Iterable[NeuronInfo], margin: float = DEFAULT_MARGIN
) -> list[NodeReport]:
    """Per LIF node: spike counts, mismatches, the near-threshold ones, first divergent step."""
    reports = []
    for n in neurons:
        if n.type != "LIF":
            continue
        s_ref = _np(reference.records[n.name]["s"]).astype(bool)
        s_oth = _np(other.records[n.name]["s"]).astype(bool)
        if s_ref.shape != s_oth.shape:
            raise ValueError(f"{n.name}: spike records have shapes {s_ref.shape} and {s_oth.shape}")
        diff = s_ref != s_oth
        mism = int(diff.sum())
        near = 0
        if mism and "u" in reference.records[n.name]:
            u = _np(reference.records[n.name]["u"]).astype(np.float64)
            near = int((diff & (np.abs(u - n.v_th) <= margin * abs(n.v_th))).sum())
        steps = np.flatnonzero(diff.reshape(diff.shape[0], -1).any(1))
        reports.append(
            NodeReport(
                n.name,
                int(s_ref.sum()),
                int(s_oth.sum()),
                mism,
                near,
                mism - near,
                int(steps[0]) if steps.size else None,
                float(s_ref.mean()),
                float(s_oth.mean()),
            )
        )
    return reports


def format_reports(reports: list[NodeReport], title: str = "") -> str:
    total = sum(r.spikes_ref for r in reports)
    mism = sum(r.mismatches for r in reports)
    near = sum(r.near_threshold for r in reports)
    lines = [f"{title}{len(reports)} LIF nodes, {total} reference spikes, {mism} mismatches ({near} near threshold)"]
    for r in reports:
        if r.mismatches:
            lines.append(
                f"  {r.name}: {r.mismatches} mismatches ({r.near_threshold} near threshold), first at step {r.first_step}"
            )
    return "\n".join(lines)
