"""Synthetic event-camera data: shapes moving over a static textured scene, seen by a DVS.

The scene is rendered at ``SUBSTEPS`` instants per time bin; a pixel emits an event when its
log intensity has moved by more than ``CONTRAST`` since its last event (ON if brighter,
OFF if darker), like a DVS pixel. Uniform noise events are added. Events are then binned
exactly like Prophesee Gen1 data (:func:`.events.bin_events`), and the labels are the
objects' boxes at the end of the window, where Gen1 puts its labels.
"""

from __future__ import annotations

import numpy as np

from .events import EVENT_DTYPE, bin_events, frames_to_input
from .recipe import SynthRecipe
from .sample import Sample
from .shapes import Shape, coverage
from .synthetic import SyntheticDataset, background, image_rng, sample_layout, shapes_target

__all__ = ["SyntheticEvents", "make_events"]

SUBSTEPS = 4
CONTRAST = 0.15  # log-intensity step that triggers an event
NOISE_RATE = 0.002  # noise events per pixel per bin
MIN_SHIFT, MAX_SHIFT = 0.3, 1.0  # travel over the window, in object sizes


def _intensity(rng: np.random.Generator, size: int) -> np.ndarray:
    return background(rng, size).mean(axis=2)


def _motion(rng: np.random.Generator, shapes: list[Shape]) -> list[tuple[float, float]]:
    """Travel of each shape over the window: enough that its edges fire in every bin."""
    out = []
    for s in shapes:
        dist = rng.uniform(MIN_SHIFT, MAX_SHIFT) * s.size
        angle = rng.uniform(0, 2 * np.pi)
        out.append((dist * np.cos(angle), dist * np.sin(angle)))
    return out


def _object_levels(rng: np.random.Generator, scene: np.ndarray, shapes: list[Shape]) -> list[float]:
    levels = []
    for s in shapes:
        x1, y1, x2, y2 = (int(v) for v in s.box())
        behind = float(scene[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1].mean())
        level = rng.uniform(0, 1)
        levels.append(level if abs(level - behind) >= 0.3 else (behind + 0.5) % 1.0)
    return levels


def make_events(recipe: SynthRecipe, split: str, index: int) -> tuple[np.ndarray, list[Shape]]:
    """The events (:data:`.events.EVENT_DTYPE`, time-ordered, t in ``[0, window_us)``) and the end-of-window shapes."""
    rng = image_rng(recipe, split, index)
    shapes = sample_layout(rng, recipe)
    scene = _intensity(rng, recipe.size)
    moves = _motion(rng, shapes)
    levels = _object_levels(rng, scene, shapes)
    steps = recipe.time_bins * SUBSTEPS
    dt = recipe.window_us / steps

    def render(frac: float) -> np.ndarray:
        img = scene.copy()
        for s, (dx, dy), level in zip(shapes, moves, levels):
            cov, (rows, cols) = coverage(s.moved(-dx * (1 - frac), -dy * (1 - frac)), recipe.size, recipe.size)
            if cov.size:
                img[rows, cols] = img[rows, cols] * (1 - cov) + level * cov
        return np.log(img + 0.05)

    ref = render(0.0)
    chunks = []
    for k in range(1, steps + 1):
        now = render(k / steps)
        diff = now - ref
        ys, xs = np.nonzero(np.abs(diff) > CONTRAST)
        ref[ys, xs] = now[ys, xs]
        ev = np.empty(len(ys), EVENT_DTYPE)
        ev["t"] = ((k - 1) * dt + rng.uniform(0, dt, len(ys))).astype(np.int64)
        ev["x"], ev["y"], ev["p"] = xs, ys, diff[ys, xs] > 0
        chunks.append(ev)
    n_noise = rng.poisson(NOISE_RATE * recipe.size * recipe.size * recipe.time_bins)
    noise = np.empty(n_noise, EVENT_DTYPE)
    noise["t"] = rng.integers(0, recipe.window_us, n_noise)
    noise["x"], noise["y"] = rng.integers(0, recipe.size, n_noise), rng.integers(0, recipe.size, n_noise)
    noise["p"] = rng.integers(0, 2, n_noise)
    events = np.concatenate([*chunks, noise])
    return events[np.argsort(events["t"], kind="stable")], shapes


class SyntheticEvents(SyntheticDataset):
    """Event frames ``[T, 3, H, W]`` for the ``frames`` encoding (recipe kind ``"events"``)."""

    encoding = "frames"

    def __init__(self, recipe: SynthRecipe, split: str = "train") -> None:
        super().__init__(recipe, split)
        self.time_steps = recipe.time_bins

    def __getitem__(self, index: int) -> Sample:
        self._check(index)
        events, shapes = make_events(self.spec, self.split, index)
        r = self.spec
        frames = bin_events(events, 0, r.window_us, r.time_bins, r.size, r.size)
        boxes, labels = shapes_target(shapes)
        return Sample(frames_to_input(frames, (r.size, r.size)), boxes, labels, index + 1)
