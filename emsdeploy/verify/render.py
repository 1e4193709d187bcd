"""Human-readable verify report (the JSON form is :meth:`VerifyReport.to_json`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from ..tables import name_table
from .chain import VerifyReport
from .compare import Comparison

__all__ = ["render_report"]

SUMMARY_COLUMNS = (
    "reference → tested",
    "mode",
    "values\ncompared",
    "mis-\nmatches",
    "first\ndivergence",
    "outputs\nmax |Δ|",
    "result",
)
# headers break into lines so that the node table fits 80 columns beside full node names
NODE_COLUMNS = (
    "node",
    "spikes\nref",
    "spikes\ntested",
    "mis-\nmatches",
    "near-\nthr",
    "first\nstep",
    "rate\nref",
    "rate\ntested",
    "max\n|ΔU|",
)


def _skipped_label(level: str) -> str:
    """``onnx-isolated`` -> ``onnx artifact (isolated)``: the check that did not run, by the name the table uses."""
    base, _, mode = level.partition("-")
    return f"{base} artifact ({mode})" if mode else base


def _verdict(c: Comparison) -> str:
    if c.exact:
        return "[green]exact[/green]"
    if c.ok:
        return f"[yellow]ok: {c.mismatches} near-threshold flip(s)[/yellow]"
    return "[red]MISMATCH[/red]"


def _first(c: Comparison) -> str:
    f = c.first_divergence
    if f is None:
        return "-"
    where = f"{f['node']} step {f['step']}"
    return where + (f" (sample {f['sample']})" if f.get("sample") else "")


def render_report(report: VerifyReport, inputs: dict[str, Any], console: Console, show_nodes: bool = False) -> None:
    shape = "×".join(map(str, report.input_shape))
    console.print(f"[bold]emsdeploy verify[/bold] {report.source}")
    console.print(f"inputs: {inputs.get('description', '')}; T = {report.time_steps}; input {shape}")
    if inputs.get("note"):
        console.print(f"        ({inputs['note']})")
    pairs = [f"{c.a} → {c.b}" for c in report.comparisons] + [_skipped_label(k) for k in report.skipped]
    table = name_table(
        None,
        [(col, "right" if col in ("values\ncompared", "mis-\nmatches") else "left") for col in SUMMARY_COLUMNS],
        names=pairs,
        name_columns=[SUMMARY_COLUMNS[0]],
        fold_columns=["mode", "first\ndivergence", "result"],
    )
    for c in report.comparisons:
        out = max(c.outputs.values(), default=0.0)
        mode = c.mode + (", integer" if c.integer else "")
        if f"{c.b}-{c.mode}" in report.skipped:  # ran on a fresh export, not on the artifact given
            mode += ", fresh export"
        table.add_row(
            f"{c.a} → {c.b}", mode, f"{c.spikes_compared:,}", f"{c.mismatches:,}", _first(c), f"{out:.3g}", _verdict(c)
        )
    for level in report.skipped:  # a skipped check is a row that says so, never "exact"
        table.add_row(_skipped_label(level), "-", "-", "-", "-", "-", "[dim]skipped[/dim]")
    console.print(table)
    q = report.quantization
    if q:
        console.print(
            f"quantisation (ref-fixed vs ref-float): spike agreement {100 * q.get('spike_agreement', 0):.3f} % "
            f"over {q.get('spikes_compared', 0):,} neuron-steps; readout max |Δ| {q.get('readout_max_abs_diff', 0):.4g}, "
            f"mean |Δ| {q.get('readout_mean_abs_diff', 0):.4g}"
        )
    for level, why in report.skipped.items():
        console.print(f"[dim]  {_skipped_label(level)}: skipped: {escape(why)}[/dim]")  # under the table: why
    for c in report.comparisons:
        rows = [n for n in c.nodes if show_nodes or n.mismatches]
        if not rows:
            continue
        t = name_table(
            f"{c.a} → {c.b} ({c.mode})",
            [(col, "left" if col == "node" else "right") for col in NODE_COLUMNS],
            names=[n.node for n in rows],
            name_columns=["node"],
            fold_columns=[NODE_COLUMNS[-1]],
        )
        for n in rows:
            t.add_row(
                n.node, f"{n.spikes_a:,}", f"{n.spikes_b:,}", f"{n.mismatches:,}",
                f"{n.near_threshold:,}" if c.mode == "isolated" else "-",
                "-" if n.first_step is None else str(n.first_step), f"{n.rate_a:.4f}", f"{n.rate_b:.4f}",
                "-" if n.max_du is None else f"{n.max_du:.3g}",
            )  # fmt: skip
        console.print(t)
    if report.ok:
        console.print("[bold green]RESULT: OK[/bold green] — every comparison holds")
    else:
        bad = [c for c in report.comparisons if not c.ok]
        parts = [f"{c.a} → {c.b} ({c.mode}): {c.mismatches} mismatches, first at {_first(c)}" for c in bad]
        console.print("[bold red]RESULT: MISMATCH[/bold red] — " + "; ".join(parts))
