"""Import official EMS-YOLO checkpoints (YOLOv5-style pickles of ``models.yolo.Model``).

The architecture comes from the pickled ``yaml`` attribute, the weights from the module
tree (EMA weights first, as the official ``attempt_load`` does), cast to float32. Anchors
come from the checkpoint's buffer, not the YAML: EMA training shifts them by rounding.
Official checkpoints store neither T nor the input encoding; the caller supplies them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .safe_unpickle import InertObject, restricted_pickle_module

__all__ = ["OfficialCheckpoint", "guess_gen1", "official_to_ours_key", "read_official"]

_BN_PARAM = re.compile(r"\.bn\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


@dataclass
class OfficialCheckpoint:
    """What an official checkpoint holds that we can use."""

    config: dict
    state_dict: dict[str, torch.Tensor]  # official key names, float32
    names: list[str]
    source: str  # "ema" or "model"
    extra: dict[str, Any] = field(default_factory=dict)


def official_to_ours_key(key: str) -> str:
    """Official tdBN wrappers hold the BatchNorm one level down (``….bn.weight``); ours do not."""
    return _BN_PARAM.sub(r".\1", key)


def _module_state(obj: InertObject, prefix: str, out: dict[str, torch.Tensor], path: Path) -> None:
    st = obj.state
    for group in ("_parameters", "_buffers"):
        entries = st.get(group) or {}
        skip = (st.get("_non_persistent_buffers_set") or set()) if group == "_buffers" else set()
        for name, value in entries.items():
            if value is None or name in skip:
                continue
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{path}: {prefix}{name} is a {type(value).__name__}, expected a tensor")
            out[prefix + name] = value.detach()
    for name, child in (st.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, InertObject):
            raise CheckpointError(f"{path}: submodule {prefix}{name} is a {type(child).__name__}, not a module")
        _module_state(child, f"{prefix}{name}.", out, path)


def read_official(path: str | Path) -> OfficialCheckpoint:
    """Load an official checkpoint through the restricted unpickler (nothing in it is executed)."""
    path = Path(path)
    ckpt = _torch_load_restricted(path)
    if not isinstance(ckpt, dict) or not ({"model", "ema"} & set(ckpt)):
        raise CheckpointError(f"{path}: not an EMS-YOLO/YOLOv5 checkpoint (no 'model' or 'ema' entry)")
    source = "ema" if ckpt.get("ema") is not None else "model"
    model = ckpt.get(source)
    if not isinstance(model, InertObject) or not model._qualname.endswith(".Model"):
        raise CheckpointError(f"{path}: ckpt['{source}'] is not a pickled models.yolo.Model")
    st = model.state
    cfg = st.get("yaml")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: the pickled Model has no 'yaml' architecture dict")
    raw: dict[str, torch.Tensor] = {}
    _module_state(model, "", raw, path)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in raw.items()}
    names = st.get("names")
    nc = int(cfg.get("nc", 0))
    if not (isinstance(names, (list, tuple)) and len(names) == nc):
        names = [str(i) for i in range(nc)]
    extra = {k: ckpt.get(k) for k in ("epoch", "date", "updates") if isinstance(ckpt.get(k), (int, str))}
    extra["yaml_file"] = st.get("yaml_file") if isinstance(st.get("yaml_file"), str) else None
    return OfficialCheckpoint(copy.deepcopy(cfg), sd, [str(n) for n in names], source, extra)


def guess_gen1(ckpt: OfficialCheckpoint) -> bool:
    """Gen1 models (frames encoding, T = 5) have two classes named car and pedestrian (often misspelt)."""
    names = [n.lower() for n in ckpt.names]
    return len(names) == 2 and names[0] == "car" and names[1].startswith(("pers", "ped"))


def _torch_load_restricted(path: Path) -> Any:
    from ..errors import UnsafeCheckpointError

    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", pickle_module=restricted_pickle_module, weights_only=False)
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(f"{path}: {e}") from None
    except Exception as e:  # torch raises RuntimeError/EOFError/UnpicklingError/... for damaged files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
