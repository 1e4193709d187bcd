"""Human-readable verify report (the JSON form is :meth:`VerifyReport.to_json`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .chain import VerifyReport
from .compare import Comparison

__all__ = ["render_report"]


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
    table = Table(show_lines=False)
    for col in (
        "reference → tested",
        "mode",
        "values compared",
        "mismatches",
        "first divergence",
        "outputs max |Δ|",
        "result",
    ):
        table.add_column(col, justify="right" if col in ("values compared", "mismatches") else "left")
    for c in report.comparisons:
        out = max(c.outputs.values(), default=0.0)
        mode = c.mode + (", integer" if c.integer else "")
        table.add_row(
            f"{c.a} → {c.b}", mode, f"{c.spikes_compared:,}", f"{c.mismatches:,}", _first(c), f"{out:.3g}", _verdict(c)
        )
    console.print(table)
    q = report.quantization
    if q:
        console.print(
            f"quantisation (ref-fixed vs ref-float): spike agreement {100 * q.get('spike_agreement', 0):.3f} % "
            f"over {q.get('spikes_compared', 0):,} neuron-steps; readout max |Δ| {q.get('readout_max_abs_diff', 0):.4g}, "
            f"mean |Δ| {q.get('readout_mean_abs_diff', 0):.4g}"
        )
    for level, why in report.skipped.items():
        console.print(f"[dim]{level}: skipped: {escape(why)}[/dim]")
    for c in report.comparisons:
        rows = [n for n in c.nodes if show_nodes or n.mismatches]
        if not rows:
            continue
        t = Table(title=f"{c.a} → {c.b} ({c.mode})")
        for col in (
            "node",
            "spikes ref",
            "spikes tested",
            "mismatches",
            "near-thr",
            "first step",
            "rate ref",
            "rate tested",
            "max |ΔU|",
        ):
            t.add_column(col, justify="left" if col == "node" else "right")
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
