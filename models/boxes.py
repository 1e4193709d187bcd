"""YOLOv5 box decoding (DESIGN.md §4 Detect; the IR's ``Decode`` op), written once.

The PyTorch model, the float and fixed-point simulators, the ONNX runtimes and the Lava runner
all decode through these two functions (the backends reach them through
:mod:`emsdeploy.ir.runtime`). They take numpy arrays or torch tensors and compute in the input's
dtype with that library's own operations, so each backend gets the numbers it always got; the
module imports neither library at load time, so a numpy-only deployment stays free of torch.

With :math:`s = \\sigma(r)`: :math:`xy = (2 s_{xy} - 0.5 + g)\\,\\mathrm{stride}`,
:math:`wh = (2 s_{wh})^2 \\cdot \\mathrm{anchor} \\cdot \\mathrm{stride}`; rows in (scale, anchor,
y, x) order: xywh in input pixels, objectness, class scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["decode_raw", "decode_readouts"]


def decode_raw(raws: Sequence[Any], anchors: Any, strides: Sequence[float]) -> Any:
    """Raw head outputs ``[B, na, ny, nx, no]`` per scale -> boxes ``[B, N, no]``.

    ``anchors`` is ``[nl, na, 2]`` in grid units (pixels / stride), as the official buffer stores
    them; a tensor, an array or nested sequences.
    """
    out = []
    for i, raw in enumerate(raws):
        b, na, ny, nx, no = (int(s) for s in raw.shape)
        stride = float(strides[i])
        grid: Any
        anchor_px: Any
        y: Any
        if _is_torch(raw):
            import torch

            yv, xv = torch.meshgrid(
                torch.arange(ny, device=raw.device), torch.arange(nx, device=raw.device), indexing="ij"
            )
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).to(raw.dtype)
            a = anchors[i] if isinstance(anchors[i], torch.Tensor) else torch.tensor(anchors[i])
            anchor_px = (a.to(raw.device, raw.dtype) * stride).view(1, na, 1, 1, 2)
            y = raw.sigmoid()
        else:
            import numpy as np

            yn, xn = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
            grid = np.stack((xn, yn), 2).reshape(1, 1, ny, nx, 2).astype(raw.dtype)
            anchor_px = (np.asarray(anchors[i]).astype(raw.dtype) * stride).reshape(1, na, 1, 1, 2)
            y = 1.0 / (1.0 + np.exp(-raw))
        xy = (y[..., 0:2] * 2 - 0.5 + grid) * stride
        wh = (y[..., 2:4] * 2) ** 2 * anchor_px
        out.append(_cat((xy, wh, y[..., 4:]), -1).reshape(b, -1, no))
    return _cat(out, 1)


def decode_readouts(readouts: Sequence[Any], anchors: Any, strides: Sequence[float], nc: int) -> Any:
    """Readouts ``[B, na·no, ny, nx]`` per scale (the graph's layout) -> boxes ``[B, N, no]``."""
    no = int(nc) + 5
    raws = []
    for r in readouts:
        b, c, ny, nx = (int(s) for s in r.shape)
        grouped = r.reshape(b, c // no, no, ny, nx)
        raws.append(grouped.permute(0, 1, 3, 4, 2) if _is_torch(r) else grouped.transpose(0, 1, 3, 4, 2))
    return decode_raw(raws, anchors, strides)


def _is_torch(a: Any) -> bool:
    return type(a).__module__.split(".")[0] == "torch"


def _cat(parts: Sequence[Any], axis: int) -> Any:
    if _is_torch(parts[0]):
        import torch

        return torch.cat(list(parts), axis)
    import numpy as np

    return np.concatenate(parts, axis)
