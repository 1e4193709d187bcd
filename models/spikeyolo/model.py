"""The SpikeYOLO model: layers from a config, input encoding, raw head outputs and decoding."""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError, load_config
from ..neurons import IntegerLIF
from ..yolo import LayeredDetector
from .config import parse_spikeyolo, spikeyolo_config
from .head import SpikeDetect

__all__ = ["SpikeYOLO", "build_spikeyolo"]


class SpikeYOLO(LayeredDetector):
    """SpikeYOLO built from an official-format config (:mod:`.config`).

    Layer ``i`` lives at ``model.<i>``, and every submodule has its official name, so official
    state_dict keys load unchanged. ``forward`` returns the raw head outputs ``[B, 4·16 + nc, ny,
    nx]`` per scale, averaged over T; :meth:`predict` also decodes them (``[B, 4 + nc, A]``: xywh
    in pixels, class scores; the official layout).

    Args:
        config: the config dict (official ``snn_yolov8.yaml`` rows plus ``scale``).
        time_steps: T for the ``direct`` encoding; default the config's (``MS_GetT`` args[1]).
        encoding: ``"direct"`` (an image ``[B, C, H, W]`` repeated T times, as ``MS_GetT``) or
            ``"frames"`` (``[B, T, C, H, W]``, one frame per step).
    """

    def __init__(self, config: dict, time_steps: int | None = None, encoding: str = "direct") -> None:
        super().__init__()
        self._set_config(config, encoding)
        parsed = parse_spikeyolo(self.config)
        self._set_layers(parsed.layers)
        self.time_steps = int(time_steps if time_steps is not None else parsed.time_steps)
        if self.time_steps < 1:
            raise ConfigError(f"time_steps must be >= 1, got {self.time_steps}")
        self.scale = parsed.scale
        self.nc = int(self.config["nc"])
        self.names = [str(i) for i in range(self.nc)]

    @property
    def detect(self) -> SpikeDetect:
        return self.model[-1]

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
