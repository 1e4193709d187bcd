"""Box decoding, written once: YOLOv5 anchors (DESIGN.md §4 Detect; the IR's ``Decode`` op) and
the anchor-free YOLOv8 / SpikeYOLO head with DFL (the IR's ``DFLDecode`` op, :func:`decode_dfl`).

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

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["decode_dfl", "decode_raw", "decode_readouts", "dfl_anchors", "dfl_rows"]


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


def dfl_anchors(sizes: Sequence[tuple[int, int]], strides: Sequence[float]) -> tuple[Any, Any]:
    """Anchor points ``[2, A]`` (grid units, cell centres: x + 0.5 and y + 0.5, row-major per scale)
    and the stride of each anchor ``[1, A]``, as numpy float32 (the official ``make_anchors``)."""
    import numpy as np

    points, stride_of = [], []
    for (ny, nx), s in zip(sizes, strides):
        yv, xv = np.meshgrid(
            np.arange(ny, dtype=np.float32) + 0.5, np.arange(nx, dtype=np.float32) + 0.5, indexing="ij"
        )
        points.append(np.stack((xv.reshape(-1), yv.reshape(-1))))
        stride_of.append(np.full((1, ny * nx), s, np.float32))
    return np.concatenate(points, 1), np.concatenate(stride_of, 1)


def decode_dfl(
    readouts: Sequence[Any],
    strides: Sequence[float],
    nc: int,
    reg_max: int = 16,
    integral: Callable[[Any], Any] | None = None,
) -> Any:
    """SpikeYOLO / YOLOv8 anchor-free decoding: readouts ``[B, 4·reg_max + nc, ny, nx]`` per scale
    -> ``[B, 4 + nc, A]`` (the official eval ``pred``): xywh in input pixels, then class scores.

    Scales are flattened row-major and concatenated (A = Σ ny·nx). Each side (left, top, right,
    bottom) is the expectation of a softmax over ``reg_max`` bins (weights 0..reg_max−1); the box is
    ``x1y1 = a − lt``, ``x2y2 = a + rb``, centre and size times the anchor's stride; classes go
    through a sigmoid. There is no objectness.

    ``integral`` (torch only): computes the expectation ``[B, 4·reg_max, A] -> [B, 4, A]`` in place
    of the weighted sum, e.g. the model's DFL module, whose 1×1 conv is the official order of
    operations (the two agree to float rounding).
    """
    sizes = [(int(r.shape[2]), int(r.shape[3])) for r in readouts]
    points, stride_of = dfl_anchors(sizes, strides)
    b = int(readouts[0].shape[0])
    flat = [r.reshape(b, int(r.shape[1]), -1) for r in readouts]
    x = _cat(flat, 2)
    a = int(x.shape[2])
    box, cls = x[:, : 4 * reg_max], x[:, 4 * reg_max :]
    if int(cls.shape[1]) != nc:
        raise ValueError(f"DFL decoding: {int(x.shape[1])} channels, expected 4·{reg_max} + {nc}")
    bins = box.reshape(b, 4, reg_max, a)
    p: Any
    w: Any
    anchor: Any
    stride: Any
    scores: Any
    if _is_torch(x):
        import torch

        p = bins.softmax(2)
        w = torch.arange(reg_max, dtype=x.dtype, device=x.device).view(1, 1, reg_max, 1)
        if integral is not None:
            p, w = integral(box).unsqueeze(2), 1.0  # the expectation already taken
        anchor = torch.from_numpy(points).to(x.device, x.dtype).unsqueeze(0)
        stride = torch.from_numpy(stride_of).to(x.device, x.dtype)
        scores = cls.sigmoid()
    else:
        import numpy as np

        e = np.exp(bins - bins.max(2, keepdims=True))
        p = e / e.sum(2, keepdims=True)
        w = np.arange(reg_max, dtype=x.dtype).reshape(1, 1, reg_max, 1)
        anchor, stride = points.astype(x.dtype)[None], stride_of.astype(x.dtype)
        scores = 1.0 / (1.0 + np.exp(-cls))
    dist = (p * w).sum(2)  # [B, 4, A]: the expected distance of each side, in grid cells
    x1y1 = anchor - dist[:, :2]
    x2y2 = anchor + dist[:, 2:]
    xywh = _cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * stride
    return _cat((xywh, scores), 1)


def dfl_rows(pred: Any) -> Any:
    """Anchor-free predictions ``[B, 4 + nc, A]`` (:func:`decode_dfl`) as the rows the YOLOv5
    NMS reads, ``[B, A, 5 + nc]``: xywh, an objectness of 1 (the head has none, so a box's score
    is its class score), classes. torch or numpy, like ``pred``."""
    rows = pred.transpose(1, 2) if _is_torch(pred) else pred.transpose(0, 2, 1)
    one = rows[..., :1] * 0 + 1
    return _cat((rows[..., :4], one, rows[..., 4:]), -1)


def _is_torch(a: Any) -> bool:
    return type(a).__module__.split(".")[0] == "torch"


def _cat(parts: Sequence[Any], axis: int) -> Any:
    if _is_torch(parts[0]):
        import torch

        return torch.cat(list(parts), axis)
    import numpy as np

    return np.concatenate(parts, axis)
