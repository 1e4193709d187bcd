"""Which detector a config describes (EMS-YOLO or SpikeYOLO), and building it: the one dispatch.

Configs carry no family tag (official files do not); the rows decide: a config whose last row
is ``SpikeDetect`` is SpikeYOLO's (``snn_yolov8.yaml``), any other one EMS-YOLO's.
"""

from __future__ import annotations

from .spikeyolo.config import is_spikeyolo_config
from .spikeyolo.model import SpikeYOLO
from .yolo import EMSYOLO

__all__ = ["Detector", "build_detector", "model_family"]

Detector = EMSYOLO | SpikeYOLO


def model_family(config: dict) -> str:
    """``"spikeyolo"`` or ``"emsyolo"``."""
    return "spikeyolo" if is_spikeyolo_config(config) else "emsyolo"


def build_detector(config: dict, time_steps: int | None = None, encoding: str = "direct") -> Detector:
    """A fresh model of the config's family (T default: the config's for SpikeYOLO, 4 for EMS-YOLO)."""
    if is_spikeyolo_config(config):
        return SpikeYOLO(config, time_steps, encoding)
    return EMSYOLO(config, 4 if time_steps is None else time_steps, encoding)
