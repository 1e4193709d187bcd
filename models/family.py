"""Which detector a config describes (EMS-YOLO or SpikeYOLO), and building it: the one dispatch.

Configs carry no family tag (official files do not); the rows decide: a config whose last row
is ``SpikeDetect`` is SpikeYOLO's (``snn_yolov8.yaml``), any other one EMS-YOLO's.
"""

from __future__ import annotations

from pathlib import Path

from .config import builtin_config_path, load_config
from .spikeyolo.config import builtin_spikeyolo_configs, is_spikeyolo_config, spikeyolo_config
from .spikeyolo.model import SpikeYOLO
from .yolo import EMSYOLO

__all__ = ["Detector", "build_detector", "model_family"]

Detector = EMSYOLO | SpikeYOLO


def model_family(config: dict) -> str:
    """``"spikeyolo"`` or ``"emsyolo"``."""
    return "spikeyolo" if is_spikeyolo_config(config) else "emsyolo"


def build_detector(
    config: dict | str | Path, time_steps: int | None = None, encoding: str = "direct", nc: int | None = None
) -> Detector:
    """A fresh model of the config's family (T default: the config's for SpikeYOLO, 4 for EMS-YOLO).

    ``config``: a config dict, a YAML path, or a shipped name of either family (``emsyolo-tiny``,
    ``res10-ee``, …, ``spikeyolo-n`` … ``spikeyolo-l``); ``nc`` replaces its number of classes.
    """
    if not isinstance(config, dict):
        name = str(config)
        if name in builtin_spikeyolo_configs():
            config = spikeyolo_config(name)
        else:
            path = Path(name)
            config = load_config(path if path.suffix in (".yaml", ".yml") and path.exists() else builtin_config_path(name))
    if nc is not None:
        config = {**config, "nc": nc}
    if is_spikeyolo_config(config):
        return SpikeYOLO(config, time_steps, encoding)
    return EMSYOLO(config, 4 if time_steps is None else time_steps, encoding)
