"""The EMS-YOLO model: layers from a config, input encoding, and the detection output."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ConfigError, load_config, parse_config
from .detect import Detect
from .encoding import ENCODINGS, encoding_steps, time_first

__all__ = ["EMSYOLO", "LayeredDetector", "build_model", "run_layers"]


class LayeredDetector(nn.Module):
    """What EMS-YOLO and SpikeYOLO share: layer ``i`` at ``model.<i>``, routed through the
    outputs listed in ``save`` (:func:`run_layers`), the input encoding, ``forward`` (the raw
    head outputs, averaged over T) and ``predict`` (decoded by the head's ``decode``)."""

    model: nn.Sequential
    save: list[int]
    config: dict
    in_channels: int
    encoding: str
    time_steps: int

    def _set_config(self, config: dict, encoding: str) -> None:
        if encoding not in ENCODINGS:
            raise ConfigError(f"unknown encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
        self.config = copy.deepcopy(config)
        self.in_channels = int(self.config.get("ch", 3))
        self.config["ch"] = self.in_channels
        self.encoding = encoding

    def _set_layers(self, specs: Sequence[Any]) -> None:
        """The layers of parsed specs (``.module``, ``.index``, ``.source``) and the outputs kept for later ones."""
        self.model = nn.Sequential(*(s.module for s in specs))
        self.save = sorted(
            {j % s.index for s in specs for j in ([s.source] if isinstance(s.source, int) else s.source) if j != -1}
        )

    @property
    def detect(self) -> Any:
        return self.model[-1]

    @property
    def stride(self) -> torch.Tensor:
        return self.detect.stride

    def encode(self, x: torch.Tensor, time_steps: int | None = None) -> torch.Tensor:
        """Turn a user input into the network's time-first layout ``[T, B, C, H, W]`` (a view).

        The checks and the layout are the one definition in :mod:`.encoding`, which every
        backend shares; raises :class:`~.encoding.EncodingError` (a ``ValueError``)."""
        t, _ = encoding_steps(x, self.encoding, (self.in_channels, None, None), time_steps, self.time_steps)
        return time_first(x, self.encoding, t)

    def forward_time_first(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the layers on an already encoded ``[T, B, C, H, W]`` tensor."""
        return run_layers(self.model, self.save, x)

    def forward(self, x: torch.Tensor, time_steps: int | None = None) -> list[torch.Tensor]:
        """Raw head outputs per scale, averaged over T (the layout is the head's)."""
        return self.forward_time_first(self.encode(x, time_steps))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, time_steps: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The head's decoded boxes and the raw outputs."""
        raws = self.forward(x, time_steps)
        return self.detect.decode(raws), raws


class EMSYOLO(LayeredDetector):
    """EMS-YOLO built from a YOLOv5-style config.

    Layer ``i`` lives at ``model.<i>`` (so state_dict keys and module paths follow the official
    layout). ``forward`` returns the raw head outputs ``[B, na, ny, nx, nc+5]`` per scale,
    averaged over T; :meth:`predict` also decodes them (``[B, N, nc+5]``: xywh in pixels,
    objectness, class scores).

    Args:
        config: the config dict (official format; see :mod:`models.config`).
        time_steps: default T for the ``direct`` encoding (``frames`` take T from the input).
        encoding: ``"direct"`` — a static image ``[B, C, H, W]`` repeated T times — or
            ``"frames"`` — event frames ``[B, T, C, H, W]``, one per step.
    """

    def __init__(self, config: dict, time_steps: int = 4, encoding: str = "direct") -> None:
        super().__init__()
        if int(time_steps) < 1:
            raise ConfigError(f"time_steps must be >= 1, got {time_steps}")
        self._set_config(config, encoding)
        self._set_layers(parse_config(self.config))
        self.time_steps = int(time_steps)
        self.nc = int(self.config["nc"])
        self.names = [str(i) for i in range(self.nc)]

    @property
    def detect(self) -> Detect:
        return self.model[-1]


def run_layers(layers: nn.Sequential, save: list[int], x: torch.Tensor) -> list[torch.Tensor]:
    """Route each layer's ``from`` inputs (YOLOv5 convention) and keep only outputs read later.

    A free function so that tracers can run exactly this routing over the same layers.
    """
    y: Any = x  # a tensor, or the list of tensors a Concat or the Detect head reads
    outputs: list[Any] = []
    for m in layers:
        if m.f != -1:
            y = outputs[m.f] if isinstance(m.f, int) else [y if j == -1 else outputs[j] for j in m.f]
        y = m(y)
        outputs.append(y if m.i in save else None)
    heads: list[torch.Tensor] = y  # the last layer is the Detect head: one output per scale
    return heads


def build_model(
    config: dict | str | Path, time_steps: int = 4, encoding: str = "direct", nc: int | None = None
) -> EMSYOLO:
    """Build a fresh model from a config dict, a YAML path, or a shipped config name."""
    if not isinstance(config, dict):
        from .config import builtin_config_path

        p = Path(config)
        config = load_config(p if p.suffix in (".yaml", ".yml") and p.exists() else builtin_config_path(str(config)))
    if nc is not None:
        config = {**config, "nc": nc}
    return EMSYOLO(config, time_steps=time_steps, encoding=encoding)
