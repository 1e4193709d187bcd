"""SpikeYOLO (Luo et al., ECCV 2024) in PyTorch: integer-valued spikes (I-LIF), time-first tensors.

Built from the official ``snn_yolov8.yaml`` rows (:mod:`.config`); module names follow the
official code so official checkpoints load by key. docs/spikeyolo.md describes the semantics.
"""

from __future__ import annotations

from .blocks import (
    AllConvBlock,
    ConvBlock,
    DownSampling,
    GetT,
    ILIFParams,
    RepConv,
    SepConv,
    SepRepConv,
    SpikeConv,
    SpikeSPPF,
)
from .config import (
    SCALES,
    SPIKE_MODULES,
    builtin_spikeyolo_configs,
    is_spikeyolo_config,
    parse_spikeyolo,
    spikeyolo_config,
)
from .head import DFL, SpikeDetect, decode_dfl, make_anchors
from .layers import BNAndPad, SeqBatchNorm2d, SeqMaxPoolSame
from .model import SpikeYOLO, build_spikeyolo

__all__ = [
    "DFL",
    "SCALES",
    "SPIKE_MODULES",
    "AllConvBlock",
    "BNAndPad",
    "ConvBlock",
    "DownSampling",
    "GetT",
    "ILIFParams",
    "RepConv",
    "SepConv",
    "SepRepConv",
    "SeqBatchNorm2d",
    "SeqMaxPoolSame",
    "SpikeConv",
    "SpikeDetect",
    "SpikeSPPF",
    "SpikeYOLO",
    "build_spikeyolo",
    "builtin_spikeyolo_configs",
    "decode_dfl",
    "is_spikeyolo_config",
    "make_anchors",
    "parse_spikeyolo",
    "spikeyolo_config",
]
