"""Event streams and their binning into frames, as the official EMS-YOLO Gen1 pipeline does it.

A sample covers a window ``[t_end − window, t_end)`` split into ``bins`` equal bins. Each
bin becomes an 8-bit image: background 127, and at every pixel that saw events the *last*
event decides, 255 for ON and 0 for OFF. The frame is resized, copied to 3 identical
channels and divided by 255 (official ``g1-resnet/utils/datasets_g1T.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["BACKGROUND", "EVENT_DTYPE", "bin_events", "frames_to_input"]

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


def frames_to_input(frames: np.ndarray, size: tuple[int, int], channels: int = 3) -> torch.Tensor:
    """uint8 ``[T, H, W]`` → float ``[T, channels, h, w]`` in [0, 1], resized bilinearly to ``size = (h, w)``.

    The resize rounds back to 8 bits before scaling, like the official ``cv2.resize`` on uint8.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().unsqueeze(1)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).round().clamp(0, 255)
    return (x / 255).expand(-1, channels, -1, -1).contiguous()
