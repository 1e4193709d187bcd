"""Options shared by several commands (one definition, one help text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

__all__ = ["ENCODING_CHOICES", "GEN1_MODE_CHOICES", "encoding_option", "gen1_mode_option", "provider_option"]

F = TypeVar("F", bound=Callable)

# = emsdeploy.models.data.GEN1_MODES (spelled out so that `--help` does not import torch; a test checks).
GEN1_MODE_CHOICES = ("official", "per-bin")
ENCODING_CHOICES = ("direct", "frames")


def gen1_mode_option(f: F) -> F:
    """``--gen1-mode``: how Gen1 event files become model inputs (docs/gen1.md)."""
    return click.option(
        "--gen1-mode",
        type=click.Choice(GEN1_MODE_CHOICES),
        default=None,
        help="Gen1 event data: 'official' (bin 0 at every step, as the released Gen1 checkpoints were "
        "trained) or 'per-bin' (bin t at step t). Default: the mode the checkpoint records, else per-bin. "
        "See docs/gen1.md.",
    )(f)


def encoding_option(f: F) -> F:
    """``--encoding``: how an official checkpoint reads its input (ours record it; a mismatch is an error)."""
    return click.option(
        "--encoding",
        type=click.Choice(ENCODING_CHOICES),
        default=None,
        help="Input encoding of an official checkpoint: 'direct' (an image repeated T times) or 'frames' "
        "(event frames, one per step). Default: frames for Gen1 models, else direct. Our checkpoints record "
        "theirs; naming another is an error.",
    )(f)


def provider_option(f: F) -> F:
    """``--provider``: the onnxruntime execution provider (emsdeploy/providers.py)."""
    return click.option(
        "--provider",
        type=click.Choice(["cpu", "cuda"]),
        default="cpu",
        show_default=True,
        help="onnxruntime execution provider: cpu, or cuda (needs onnxruntime-gpu and a GPU; "
        "refused in one line when this installation lacks it).",
    )(f)
