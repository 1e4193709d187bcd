"""The object classes of the synthetic datasets, as geometry: an inside test and a box.

Shapes are rendered by area coverage (``SUPERSAMPLE``² points per pixel), so their edges are
anti-aliased like a camera image, and their labelled box is the exact geometric extent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SHAPE_CLASSES", "Shape", "coverage"]

SHAPE_CLASSES = ("disc", "square", "triangle", "bar")
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Shape:
    """One object: class index into :data:`SHAPE_CLASSES`, centre and size in pixels.

    ``size`` is the diameter / side / base; bars are ``size`` long and ``size / aspect`` thick.
    ``orient`` is 0 or 1: a triangle pointing up or down, a bar horizontal or vertical.
    """

    cls: int
    cx: float
    cy: float
    size: float
    orient: int = 0
    aspect: float = 3.0

    def box(self) -> tuple[float, float, float, float]:
        """``x1, y1, x2, y2`` of the shape's extent."""
        hw, hh = self.half_extent()
        return self.cx - hw, self.cy - hh, self.cx + hw, self.cy + hh

    def half_extent(self) -> tuple[float, float]:
        s = self.size / 2
        name = SHAPE_CLASSES[self.cls]
        if name == "triangle":
            return s, s * 0.9
        if name == "bar":
            thin = s / self.aspect
            return (s, thin) if self.orient == 0 else (thin, s)
        return s, s

    def moved(self, dx: float, dy: float) -> Shape:
        return Shape(self.cls, self.cx + dx, self.cy + dy, self.size, self.orient, self.aspect)

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask of the points ``(x, y)`` (pixel coordinates) inside the shape."""
        dx, dy = x - self.cx, y - self.cy
        hw, hh = self.half_extent()
        name = SHAPE_CLASSES[self.cls]
        if name == "disc":
            return dx * dx + dy * dy <= hw * hw
        box = (np.abs(dx) <= hw) & (np.abs(dy) <= hh)
        if name == "triangle":
            # Apex at the top (orient 0) or bottom; the half-width shrinks linearly towards it.
            from_apex = (dy + hh) if self.orient == 0 else (hh - dy)
            return box & (np.abs(dx) <= hw * from_apex / (2 * hh))
        return box


def coverage(shape: Shape, height: int, width: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Fraction of each pixel the shape covers, on the shape's bounding window only.

    Returns the coverage ``[h, w]`` (float32 in [0, 1]) and the window's ``(rows, cols)`` slices.
    """
    x1, y1, x2, y2 = shape.box()
    r0, r1 = max(int(np.floor(y1)), 0), min(int(np.ceil(y2)) + 1, height)
    c0, c1 = max(int(np.floor(x1)), 0), min(int(np.ceil(x2)) + 1, width)
    if r1 <= r0 or c1 <= c0:
        return np.zeros((0, 0), np.float32), (slice(0, 0), slice(0, 0))
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    ys = (np.arange(r0, r1)[:, None] + offsets[None, :]).reshape(-1)
    xs = (np.arange(c0, c1)[:, None] + offsets[None, :]).reshape(-1)
    hit = shape.inside(xs[None, :], ys[:, None]).astype(np.float32)
    cov = hit.reshape(r1 - r0, SUPERSAMPLE, c1 - c0, SUPERSAMPLE).mean(axis=(1, 3))
    return cov, (slice(r0, r1), slice(c0, c1))
