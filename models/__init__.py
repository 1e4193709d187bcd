"""EMS-YOLO in PyTorch (Su et al., ICCV 2023), and SpikeYOLO (Luo et al., ECCV 2024) in
:mod:`.spikeyolo`, written for deployment: explicit time axis, neuron parameters on the
modules, no module-level globals.

Installed as ``emsdeploy.models``; from the rest of emsdeploy it imports only the checked file
readers and the atomic writer (:mod:`emsdeploy.fileio`, which depends on nothing but the errors).

The names below are imported on first use (PEP 562), so that the torch-free modules here — the
input encodings (:mod:`.encoding`) and the box decoding (:mod:`.boxes`), which the run contract
in :mod:`emsdeploy.ir.runtime` shares with numpy-only backends — load without torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .blocks import ConvSiLU, EMSBlock2, MSBlock, NeuronParams, Stem
    from .boxes import decode_raw
    from .config import MODULES, ConfigError, builtin_config_path, builtin_configs, load_config, parse_config
    from .detect import Detect
    from .encoding import ENCODINGS, EncodingError
    from .family import build_detector, model_family
    from .layers import Concat, Sample, SeqConv2d, SeqMaxPool2d, TdBatchNorm
    from .neurons import LIF, IntegerLIF, SiLUNeuron, integer_spike_fn, spike_fn
    from .recording import record_neurons
    from .spikeyolo import SpikeYOLO, build_spikeyolo
    from .yolo import EMSYOLO, build_model, run_layers

# The shipped model: EMS-YOLO tiny trained on the synthetic shapes (see its model card beside it).
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "emsyolo-tiny-synth.pt"

_HOMES = {
    "blocks": ("ConvSiLU", "EMSBlock2", "MSBlock", "NeuronParams", "Stem"),
    "boxes": ("decode_raw",),
    "config": ("MODULES", "ConfigError", "builtin_config_path", "builtin_configs", "load_config", "parse_config"),
    "detect": ("Detect",),
    "encoding": ("ENCODINGS", "EncodingError"),
    "family": ("build_detector", "model_family"),
    "layers": ("Concat", "Sample", "SeqConv2d", "SeqMaxPool2d", "TdBatchNorm"),
    "neurons": ("LIF", "IntegerLIF", "SiLUNeuron", "integer_spike_fn", "spike_fn"),
    "recording": ("record_neurons",),
    "spikeyolo": ("SpikeYOLO", "build_spikeyolo"),
    "yolo": ("EMSYOLO", "build_model", "run_layers"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "DEFAULT_CHECKPOINT",
    "EMSYOLO",
    "ENCODINGS",
    "LIF",
    "MODULES",
    "Concat",
    "ConfigError",
    "ConvSiLU",
    "Detect",
    "EMSBlock2",
    "EncodingError",
    "IntegerLIF",
    "MSBlock",
    "NeuronParams",
    "Sample",
    "SeqConv2d",
    "SeqMaxPool2d",
    "SiLUNeuron",
    "SpikeYOLO",
    "Stem",
    "TdBatchNorm",
    "build_detector",
    "build_model",
    "build_spikeyolo",
    "builtin_config_path",
    "builtin_configs",
    "decode_raw",
    "integer_spike_fn",
    "load_config",
    "model_family",
    "parse_config",
    "record_neurons",
    "run_layers",
    "spike_fn",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use; submodules (``models.yolo``) load the same way."""
    module = _HOME_OF.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
