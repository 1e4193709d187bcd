"""One-line notices on stderr that a user must not miss (kept apart from reports on stdout)."""

from __future__ import annotations

import click

__all__ = ["warn", "warn_input_fallback"]


def warn(message: str) -> None:
    """``warning: ...`` on stderr, one line."""
    click.echo(f"warning: {message}", err=True)


def warn_input_fallback(inputs) -> None:
    """Say it when a report averages over random inputs because the default set did not fit."""
    if inputs.kind == "random" and inputs.note:
        warn(f"measuring on {inputs.description} because {inputs.note}; pass --input to measure on real data")
