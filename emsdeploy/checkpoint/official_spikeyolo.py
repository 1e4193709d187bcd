"""Import official SpikeYOLO checkpoints (BICLab/SpikeYOLO: pickled ultralytics ``DetectionModel``).

Recognised by the pickled model class (:data:`.official.SPIKEYOLO_MODEL`) and a ``yaml`` dict
whose last row is ``SpikeDetect``. What the state_dict does not hold is read from the pickled
modules' attributes, all inert data: T (``MS_GetT.T``, layer 0), the BatchNorm ε (1e-3, set on
every module by the official ``initialize_weights``; one value for the whole model) and the
strides (``DetectionModel.stride``, checked against the ones the config implies when the model
is built). Weights are cast from FP16 to float32; the keys are ours unchanged.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.spikeyolo.config import is_spikeyolo_config
from .checks import check_config
from .official import OfficialCheckpoint, module_state, walk_modules
from .safe_unpickle import InertObject

__all__ = ["spikeyolo_from_payload"]

_BN = "torch.nn.modules.batchnorm.BatchNorm2d"
_GET_T = "ultralytics.nn.modules.yolo_spikformer.MS_GetT"
MAX_TIME_STEPS = 10_000


def spikeyolo_from_payload(ckpt: dict, model: InertObject, source: str, path: Path) -> OfficialCheckpoint:
    """Check a pickled SpikeYOLO ``DetectionModel`` and extract config, weights, T, ε and strides."""
    where = f"ckpt['{source}']"
    st = model.state
    cfg = st.get("yaml")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: {where} (DetectionModel) has no 'yaml' architecture dict")
    if not is_spikeyolo_config(cfg):
        raise CheckpointError(
            f"{path}: {where}.yaml is not a SpikeYOLO config (its last row is not SpikeDetect); "
            "other ultralytics models are not supported"
        )
    check_config(cfg, str(path), f"{where}.yaml")
    cfg = copy.deepcopy(cfg)
    eps = _bn_eps(model, path, where)
    time_steps = _time_steps(model, path, where)
    raw = module_state(model, path, where)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in raw.items()}
    cfg["bn_eps"] = eps
    cfg["backbone"][0] = [*cfg["backbone"][0][:3], [cfg["backbone"][0][3][0], time_steps]]
    nc = cfg["nc"]
    names = _names(st.get("names"), nc)
    stride = st.get("stride")
    extra: dict[str, Any] = {
        k: ckpt.get(k) for k in ("epoch", "date", "version") if isinstance(ckpt.get(k), (int, str))
    }
    extra["yaml_file"] = cfg.get("yaml_file") if isinstance(cfg.get("yaml_file"), str) else None
    extra["scale"] = cfg.get("scale") if isinstance(cfg.get("scale"), str) else None
    if isinstance(stride, torch.Tensor) and stride.dim() == 1 and stride.numel() <= 16:
        extra["stride"] = [float(s) for s in stride.float().tolist()]
    else:
        raise CheckpointError(f"{path}: {where}.stride is not a vector of strides")
    return OfficialCheckpoint(cfg, sd, names, source, extra, family="spikeyolo", time_steps=time_steps)


def _bn_eps(model: InertObject, path: Path, where: str) -> float:
    """The one ε of every BatchNorm2d in the file (the model has one ``bn_eps``)."""
    eps: float | None = None
    for prefix, m in walk_modules(model, path, where):
        if m._qualname != _BN:
            continue
        e = m.state.get("eps")
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not (0 < e < 1) or not math.isfinite(e):
            raise CheckpointError(
                f"{path}: {where}: {prefix.rstrip('.')}.eps must be a number in (0, 1), got {e!r:.40}"
            )
        if eps is None:
            eps = float(e)
        elif float(e) != eps:
            raise CheckpointError(
                f"{path}: {where}: {prefix.rstrip('.')}.eps is {e}, but other BatchNorms have {eps}; "
                "one eps per model is supported"
            )
    if eps is None:
        raise CheckpointError(f"{path}: {where} has no BatchNorm2d module; not a SpikeYOLO model")
    return eps


def _time_steps(model: InertObject, path: Path, where: str) -> int:
    """T from layer 0 (``MS_GetT.T``), which the official forward repeats the image by."""
    try:
        layer0 = model.state["_modules"]["model"].state["_modules"]["0"]
    except (KeyError, TypeError, AttributeError):
        raise CheckpointError(f"{path}: {where} has no layer model.0") from None
    if not isinstance(layer0, InertObject) or layer0._qualname != _GET_T:
        raise CheckpointError(
            f"{path}: {where}: model.0 is {getattr(layer0, '_qualname', type(layer0).__name__)}, expected MS_GetT"
        )
    t = layer0.state.get("T")
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_TIME_STEPS:
        raise CheckpointError(f"{path}: {where}: model.0.T must be an integer in [1, {MAX_TIME_STEPS}], got {t!r:.40}")
    return t


def _names(names: Any, nc: int) -> list[str]:
    """Class names from a ``{index: name}`` dict or a list; indices as names otherwise."""
    if isinstance(names, dict) and sorted(k for k in names if isinstance(k, int)) == list(range(nc)):
        names = [names[i] for i in range(nc)]
    if isinstance(names, (list, tuple)) and len(names) == nc and all(isinstance(n, str) for n in names):
        return list(names)
    return [str(i) for i in range(nc)]
