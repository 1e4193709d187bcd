"""Rich tables that fit the terminal and never cut a name.

A cut name is worse than a wrapped one: ``model.1.resid…`` can be two different layers.
Name columns therefore keep their full width (no wrap, no ellipsis) and every other column
folds instead; the console is as wide as the terminal (``COLUMNS`` when set; 100 columns
160 when piped, so a log keeps every column). Counts print as integers with thousands separators,
energies in one unit with a fixed number of significant digits (:func:`energy_text`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table

__all__ = ["ENERGY_DIGITS", "PIPED_WIDTH", "count_text", "energy_text", "name_table", "stdout_console"]

PIPED_WIDTH = 160  # columns when stdout is not a terminal and COLUMNS is unset (logs, files)
ENERGY_DIGITS = 4  # significant digits of every energy printed in a table


def stdout_console(*, stderr: bool = False) -> Console:
    """A console as wide as the terminal; :data:`PIPED_WIDTH` when piped (``COLUMNS`` wins)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not os.environ.get("COLUMNS") and not stream.isatty():
        width = PIPED_WIDTH
    return Console(width=width, stderr=stderr)


def name_table(
    title: str | None,
    columns: Sequence[tuple[str, JustifyMethod]],
    names: Iterable[str] = (),
    name_columns: Iterable[str] = (),
    fold_columns: Iterable[str] = (),
) -> Table:
    """A table whose ``name_columns`` are as wide as their longest entry in ``names`` and never
    cut. Only ``fold_columns`` (``(header, justify)`` pairs in ``columns``) wrap when the terminal is
    narrow; the rest keep one line each. Light borders leave the width to the content."""
    longest = max((len(n) for n in names), default=0)
    keep, fold = set(name_columns), set(fold_columns)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for header, justify in columns:
        if header in keep:
            table.add_column(header, justify=justify, no_wrap=True, min_width=max(longest, len(header)))
        elif header in fold:
            table.add_column(header, justify=justify, overflow="fold")
        else:
            table.add_column(header, justify=justify, no_wrap=True)
    return table


def count_text(value: float | int | None) -> str:
    """An integer count with thousands separators; '-' for None."""
    return "-" if value is None else f"{round(value):,}"


def energy_text(value_pj: float, unit: str = "nJ") -> str:
    """An energy given in pJ, shown in ``unit`` with :data:`ENERGY_DIGITS` significant digits,
    plain notation (never ``1.606e+04`` next to ``300``)."""
    scale = {"pJ": 1.0, "nJ": 1e3, "uJ": 1e6, "mJ": 1e9}[unit]
    v = value_pj / scale
    if v == 0:
        return "0"
    from math import floor, log10

    decimals = max(0, ENERGY_DIGITS - 1 - floor(log10(abs(v))))
    return f"{v:,.{decimals}f}"
