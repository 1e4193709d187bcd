"""Event streams and their binning into frames, as the official EMS-YOLO Gen1 pipeline does it.

A sample covers a window ``[t_end − window, t_end)`` split into ``bins`` equal bins. Each
bin becomes an 8-bit image: background 127, and at every pixel that saw events the *last*
event decides, 255 for ON and 0 for OFF. The frame is resized with OpenCV's bilinear
``cv2.resize`` (its fixed-point arithmetic, bit for bit, since it *is* OpenCV), copied to 3
identical channels and divided by 255 (official ``g1-resnet/utils/datasets_g1T.py``).
Which bins feed which step, and the window at the start of a recording, are the Gen1
loader's choice (:mod:`.gen1`, docs/gen1.md).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["BACKGROUND", "EVENT_DTYPE", "bin_events", "frames_to_input", "resize_frames"]

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])  # t in µs, p: 1 ON, 0 OFF
BACKGROUND = 127


def bin_events(events: np.ndarray, t_start: int, t_end: int, bins: int, height: int, width: int) -> np.ndarray:
    """``[bins, height, width]`` uint8 frames of the events with ``t_start <= t < t_end``.

    ``events`` must be in time order (as sensors write them); where several events hit one
    pixel in one bin, the last one wins.
    """
    frames = np.full((bins, height, width), BACKGROUND, np.uint8)
    t = events["t"].astype(np.int64)
    sel = (t >= t_start) & (t < t_end)
    if not sel.any():
        return frames
    t, x, y, p = t[sel], events["x"][sel].astype(np.int64), events["y"][sel].astype(np.int64), events["p"][sel]
    b = np.minimum((t - t_start) * bins // (t_end - t_start), bins - 1)
    flat = (b * height + y) * width + x
    # np.unique keeps the first occurrence; on the reversed stream that is the last event.
    last, first_in_reversed = np.unique(flat[::-1], return_index=True)
    polarity = p[::-1][first_in_reversed]
    frames.reshape(-1)[last] = np.where(polarity > 0, 255, 0).astype(np.uint8)
    return frames


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[T, H, W]`` → uint8 ``[T, h, w]`` with ``cv2.resize(..., INTER_LINEAR)``, ``size = (h, w)``.

    OpenCV, not a float bilinear: OpenCV resizes 8-bit images in fixed point (11-bit weights),
    and a float bilinear with rounding differs from it by ±1 at about 5 % of pixels — inputs the
    official checkpoints never saw (docs/gen1.md).
    """
    import cv2

    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    h, w = int(size[0]), int(size[1])
    if frames.shape[-2:] == (h, w):
        return frames.copy()
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) for f in frames])


def frames_to_input(frames: np.ndarray, size: tuple[int, int], channels: int = 3) -> torch.Tensor:
    """uint8 ``[T, H, W]`` → float ``[T, channels, h, w]`` in [0, 1], resized to ``size = (h, w)``
    by :func:`resize_frames` (8-bit in, 8-bit out, as the official loader), then divided by 255."""
    x = torch.from_numpy(resize_frames(frames, size)).float().unsqueeze(1)
    return (x / 255).expand(-1, channels, -1, -1).contiguous()
