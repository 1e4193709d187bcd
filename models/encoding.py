"""Input encodings (DESIGN.md §2): how a user input becomes the network's input at each step.

The one definition, shared by the PyTorch model (:meth:`EMSYOLO.encode`) and, through
:mod:`emsdeploy.ir.runtime`, by the simulators, the ONNX runtimes and the Lava runner. It reads
only ``.ndim``, ``.shape`` and slicing, so numpy arrays and torch tensors go through the same
checks, and it imports neither library: a numpy-only deployment (onnxruntime) stays free of torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from emsdeploy.errors import InputError

__all__ = ["ENCODINGS", "EncodingError", "encoding_steps", "time_first"]

ENCODINGS = ("direct", "frames")

_AXES = ("C", "H", "W")


class EncodingError(InputError, ValueError):
    """An input that does not fit the model's encoding. Also a ``ValueError``, which is what a
    PyTorch user calling the model expects; the CLI reports it in one line as an ``InputError``."""


def encoding_steps(
    x: Any,
    encoding: str,
    shape: Sequence[int | None],
    time_steps: int | None = None,
    default_time_steps: int | None = None,
    where: str = "",
) -> tuple[int, Callable[[int], Any]]:
    """Check ``x`` against ``encoding`` and return ``(T, t -> input at step t)``.

    Args:
        x: ``direct``: images ``[B, C, H, W]``, the same at every step; ``frames``: event frames
            ``[B, T, C, H, W]``, frame t at step t. A numpy array or a torch tensor.
        shape: the per-step ``(C, H, W)``; ``None`` where any size goes (the PyTorch model is
            fully convolutional, so it knows only C).
        time_steps: T for ``direct`` (default ``default_time_steps``); for ``frames`` T is the
            number of frames, and a ``time_steps`` that disagrees is an error.
        where: prefix of error messages (the model file, for example).

    Returns:
        ``(T, step)`` where ``step(t)`` is the ``[B, C, H, W]`` input of step ``t`` (a view, no copy).

    Raises:
        EncodingError: the input's rank or sizes do not fit, or T < 1; the message gives both.
    """
    pre = f"{where}: " if where else ""
    if not hasattr(x, "ndim") or not hasattr(x, "shape"):
        raise EncodingError(f"{pre}input must be an array or tensor, got {type(x).__name__}")
    if encoding not in ENCODINGS:
        raise EncodingError(f"{pre}unknown encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    dims = ", ".join(_AXES[i] if s is None else str(int(s)) for i, s in enumerate(shape))
    got = tuple(int(s) for s in x.shape)
    if encoding == "direct":
        if x.ndim != 4 or not _fits(got[1:], shape):
            raise EncodingError(f"{pre}direct encoding takes images [B, {dims}], got {got}{_hint(got, shape, 4)}")
        t = int(time_steps or default_time_steps or 0)
        if t < 1:
            raise EncodingError(f"{pre}time_steps must be >= 1, got {t}")
        return t, lambda _t: x
    if x.ndim != 5 or not _fits(got[2:], shape):
        raise EncodingError(f"{pre}frames encoding takes [B, T, {dims}], got {got}{_hint(got, shape, 5)}")
    if time_steps is not None and time_steps != got[1]:
        raise EncodingError(f"{pre}input has {got[1]} frames but time_steps={time_steps}")
    return got[1], lambda t: x[:, t]


def time_first(x: Any, encoding: str, time_steps: int) -> Any:
    """The whole input time-first, ``[T, B, C, H, W]``, as a view; ``x`` and ``time_steps`` as
    :func:`encoding_steps` checked and returned them.

    ``direct`` repeats the images along a new time axis without copying them (torch ``expand``,
    numpy ``broadcast_to``); ``frames`` swaps the batch and time axes.
    """
    if encoding == "frames":
        return x.swapaxes(0, 1)
    if hasattr(x, "expand"):  # torch
        return x[None].expand(time_steps, *x.shape)
    import numpy as np

    return np.broadcast_to(x[None], (time_steps, *x.shape))


def _fits(got: Sequence[int], shape: Sequence[int | None]) -> bool:
    return len(got) == len(shape) and all(s is None or int(s) == g for g, s in zip(got, shape))


def _hint(got: tuple[int, ...], shape: Sequence[int | None], rank: int) -> str:
    """What exactly is off: the rank, or the channel count (the usual mistakes)."""
    layout = "[B, C, H, W] images" if rank == 4 else "[B, T, C, H, W] event frames"
    if len(got) != rank:
        return f" (a {len(got)}-D input; this encoding takes {rank}-D {layout})"
    c = got[rank - 3]
    if shape and shape[0] is not None and c != int(shape[0]):
        return f" (expected {int(shape[0])} input channels, got {c})"
    return ""
