"""Options shared by several commands (one definition, one help text)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import click

__all__ = [
    "ENCODING_CHOICES",
    "GEN1_MODE_CHOICES",
    "choice_option",
    "encoding_option",
    "gen1_mode_option",
    "provider_option",
    "size_and_steps_options",
]

F = TypeVar("F", bound=Callable)

# = emsdeploy.models.data.GEN1_MODES (spelled out so that `--help` does not import torch; a test checks).
GEN1_MODE_CHOICES = ("official", "per-bin")
ENCODING_CHOICES = ("direct", "frames")


def choice_option(name: str, choices: Sequence[str], help: str, default: str | None = None) -> Callable[[F], F]:
    """An option taking one of ``choices``; ``--help`` shows the default where there is one."""
    return click.option(name, type=click.Choice(choices), default=default, show_default=default is not None, help=help)


def gen1_mode_option(f: F) -> F:
    """``--gen1-mode``: how Gen1 event files become model inputs (docs/gen1.md)."""
    return choice_option(
        "--gen1-mode",
        GEN1_MODE_CHOICES,
        "Gen1 event data: 'official' (bin 0 at every step, as the released Gen1 checkpoints were "
        "trained) or 'per-bin' (bin t at step t). Default: the mode the checkpoint records, else per-bin. "
        "See docs/gen1.md.",
    )(f)


def encoding_option(f: F) -> F:
    """``--encoding``: how an official checkpoint reads its input (ours record it; a mismatch is an error)."""
    return choice_option(
        "--encoding",
        ENCODING_CHOICES,
        "Input encoding of an official checkpoint: 'direct' (an image repeated T times) or 'frames' "
        "(event frames, one per step). Default: frames for Gen1 models, else direct. Our checkpoints record "
        "theirs; naming another is an error.",
    )(f)


def provider_option(f: F) -> F:
    """``--provider``: the onnxruntime execution provider (emsdeploy/providers.py)."""
    return choice_option(
        "--provider",
        ("cpu", "cuda"),
        "onnxruntime execution provider: cpu, or cuda (needs onnxruntime-gpu and a GPU; "
        "refused in one line when this installation lacks it).",
        default="cpu",
    )(f)


def size_and_steps_options(f: F) -> F:
    """``--input-size`` and ``--time-steps/-T`` of a command that traces a checkpoint as it was trained
    unless told otherwise (energy, export, fit)."""
    f = click.option(
        "--time-steps", "-T", type=click.IntRange(min=1), default=None, help="Time steps (default: the checkpoint's)."
    )(f)
    return click.option(
        "--input-size", default=None, help="H or HxW of the input (default: the size the checkpoint was trained at)."
    )(f)
