"""Spike-equivalence verification across backends (DESIGN.md §7): the top floor."""

from .chain import TARGETS, VerifyOptions, VerifyReport, verify
from .compare import DEFAULT_MARGIN, Comparison, NodeComparison, compare_records
from .render import render_report

__all__ = [
    "DEFAULT_MARGIN",
    "TARGETS",
    "Comparison",
    "NodeComparison",
    "VerifyOptions",
    "VerifyReport",
    "compare_records",
    "render_report",
    "verify",
]
