"""EMS-YOLO in PyTorch (Su et al., ICCV 2023), written for deployment: explicit time axis,
neuron parameters on the modules, no module-level globals.

Installed as ``emsdeploy.models``; from the rest of emsdeploy it imports only the checked file
readers and the atomic writer (:mod:`emsdeploy.fileio`, which depends on nothing but the errors).
"""

from pathlib import Path

from .blocks import ConvSiLU, EMSBlock2, MSBlock, NeuronParams, Stem
from .config import MODULES, ConfigError, builtin_config_path, builtin_configs, load_config, parse_config
from .detect import Detect, decode_raw
from .layers import Concat, Sample, SeqConv2d, SeqMaxPool2d, TdBatchNorm
from .neurons import LIF, SiLUNeuron, spike_fn
from .recording import record_neurons
from .yolo import EMSYOLO, ENCODINGS, build_model, run_layers

# The shipped model: EMS-YOLO tiny trained on the synthetic shapes (see its model card beside it).
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "emsyolo-tiny-synth.pt"

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
    "MSBlock",
    "NeuronParams",
    "Sample",
    "SeqConv2d",
    "SeqMaxPool2d",
    "SiLUNeuron",
    "Stem",
    "TdBatchNorm",
    "build_model",
    "builtin_config_path",
    "builtin_configs",
    "decode_raw",
    "load_config",
    "parse_config",
    "record_neurons",
    "run_layers",
    "spike_fn",
]
