"""Which input sizes a model accepts, checked before tracing.

Every stride-2 stage halves H and W with rounding up, and a residual block adds the
strided branch to its shortcut: unless H and W divide by the model's largest stride, two
branches disagree by one pixel deep inside the network ("Add inputs must share one shape").
Saying the rule up front, with the nearest sizes that work, is what a user can act on.

A ``.npy`` input carries its own size; commands that take ``--input`` use it when no
``--input-size`` is given (:func:`size_from_input`).
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

__all__ = ["NpySize", "allowed_sizes_text", "check_input_size", "model_stride", "size_from_input"]


class NpySize(tuple):
    """``(H, W)`` read from a ``.npy`` input; ``origin`` names that file for error messages."""

    origin: Path


def model_stride(model) -> int:
    """The model's largest downsampling factor (the deepest detection scale's stride)."""
    return round(float(max(model.stride.tolist())))


def allowed_sizes_text(stride: int) -> str:
    """``"a multiple of 32, at least 32"``: the rule in words, as errors and docs say it."""
    return f"a multiple of {stride}, at least {stride}"


def check_input_size(model, size: tuple[int, int], source: str | Path) -> None:
    """Raise :class:`InputError` unless ``size = (H, W)`` divides by the model's stride."""
    stride = model_stride(model)
    bad = [v for v in size if v < stride or v % stride]
    if not bad:
        return
    h, w = size
    near = sorted(
        {max(stride, (v // stride) * stride) for v in size} | {max(stride, -(-v // stride) * stride) for v in size}
    )
    rule = (
        f"H and W must each be {allowed_sizes_text(stride)} (the model downsamples by {stride}); "
        f"nearest: {', '.join(map(str, near))}"
    )
    origin = getattr(size, "origin", None)
    if origin is not None:  # the size came from the user's array: name that file
        raise InputError(f"{origin}: inputs of {h}x{w} do not fit {source}: {rule}")
    raise InputError(f"{source}: input size {h}x{w} does not fit the model: {rule}")


def size_from_input(input_spec: str | Path | None, input_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """``input_size`` if given, else (H, W) of a ``.npy`` ``--input`` (read from its header only)."""
    if input_size is not None or input_spec is None:
        return input_size
    path = Path(input_spec)
    if path.suffix.lower() != ".npy" or not path.is_file():
        return None
    from .fileio.npy import npy_header

    shape, _, _ = npy_header(path)  # the checked reader: header only, no data read
    if len(shape) not in (4, 5):
        raise InputError(f"{path}: array of shape {shape}; expected [B, C, H, W] images or [B, T, C, H, W] frames")
    size = NpySize((int(shape[-2]), int(shape[-1])))
    size.origin = path
    return size
