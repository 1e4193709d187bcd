"""The SpikeYOLO model: layers from a config, input encoding, raw head outputs and decoding."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from ..config import ConfigError, load_config
from ..encoding import ENCODINGS, encoding_steps, time_first
from ..neurons import IntegerLIF
from ..yolo import run_layers
from .config import parse_spikeyolo, spikeyolo_config
from .head import SpikeDetect

__all__ = ["SpikeYOLO", "build_spikeyolo"]


class SpikeYOLO(nn.Module):
    """SpikeYOLO built from an official-format config (:mod:`.config`).

    Layer ``i`` lives at ``model.<i>``, and every submodule has its official name, so official
    state_dict keys load unchanged. ``forward`` returns the raw head outputs; :meth:`predict`
    also decodes them.

    Args:
        config: the config dict (official ``snn_yolov8.yaml`` rows plus ``scale``).
        time_steps: T for the ``direct`` encoding; default the config's (``MS_GetT`` args[1]).
        encoding: ``"direct"`` (an image ``[B, C, H, W]`` repeated T times, as ``MS_GetT``) or
            ``"frames"`` (``[B, T, C, H, W]``, one frame per step).
    """

    def __init__(self, config: dict, time_steps: int | None = None, encoding: str = "direct") -> None:
        super().__init__()
        if encoding not in ENCODINGS:
            raise ConfigError(f"unknown encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
        self.config = copy.deepcopy(config)
        self.in_channels = int(self.config.get("ch", 3))
        self.config["ch"] = self.in_channels
        parsed = parse_spikeyolo(self.config)
        specs = parsed.layers
        self.model = nn.Sequential(*(s.module for s in specs))
        self.save = sorted(
            {j % s.index for s in specs for j in ([s.source] if isinstance(s.source, int) else s.source) if j != -1}
        )
        self.time_steps = int(time_steps if time_steps is not None else parsed.time_steps)
        if self.time_steps < 1:
            raise ConfigError(f"time_steps must be >= 1, got {self.time_steps}")
        self.encoding = encoding
        self.scale = parsed.scale
        self.nc = int(self.config["nc"])
        self.names = [str(i) for i in range(self.nc)]

    @property
    def detect(self) -> SpikeDetect:
        return self.model[-1]

    @property
    def stride(self) -> torch.Tensor:
        return self.detect.stride

    @property
    def levels(self) -> int:
        """D, the largest integer spike; :meth:`set_levels` changes it on every I-LIF."""
        return next(m.levels for m in self.modules() if isinstance(m, IntegerLIF))

    def set_levels(self, levels: int) -> SpikeYOLO:
        """Set D on every I-LIF (and in the config, so a saved checkpoint keeps it)."""
        if not 1 <= int(levels) <= 255:
            raise ConfigError(f"levels (D) must be in [1, 255], got {levels}")
        for m in self.modules():
            if isinstance(m, IntegerLIF):
                m.levels = int(levels)
        self.config["levels"] = int(levels)
        return self

    def encode(self, x: torch.Tensor, time_steps: int | None = None) -> torch.Tensor:
        """The input time-first, ``[T, B, C, H, W]`` (a view): the one definition in :mod:`models.encoding`."""
        t, _ = encoding_steps(x, self.encoding, (self.in_channels, None, None), time_steps, self.time_steps)
        return time_first(x, self.encoding, t)

    def forward_time_first(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the layers on an already encoded ``[T, B, C, H, W]`` tensor (H, W multiples of 32)."""
        return run_layers(self.model, self.save, x)

    def forward(self, x: torch.Tensor, time_steps: int | None = None) -> list[torch.Tensor]:
        """Raw head outputs ``[B, 4·16 + nc, ny, nx]`` per scale, averaged over T."""
        return self.forward_time_first(self.encode(x, time_steps))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, time_steps: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Decoded ``[B, 4 + nc, A]`` (xywh in pixels, class scores; the official layout) and the raw outputs."""
        raws = self.forward(x, time_steps)
        return self.detect.decode(raws), raws


def build_spikeyolo(
    config: dict | str | Path, time_steps: int | None = None, encoding: str = "direct", nc: int | None = None
) -> SpikeYOLO:
    """A fresh SpikeYOLO from a config dict, a YAML path, or a shipped name (``spikeyolo-n`` … ``-l``)."""
    if not isinstance(config, dict):
        p = Path(config)
        config = load_config(p) if p.suffix in (".yaml", ".yml") and p.exists() else spikeyolo_config(str(config))
    if nc is not None:
        config = {**config, "nc": nc}
    return SpikeYOLO(config, time_steps=time_steps, encoding=encoding)
