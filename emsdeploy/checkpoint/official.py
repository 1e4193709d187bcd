"""Import official EMS-YOLO checkpoints (YOLOv5-style pickles of ``models.yolo.Model``);
SpikeYOLO's (ultralytics ``DetectionModel`` pickles) branch off to :mod:`.official_spikeyolo`.

The architecture comes from the pickled ``yaml`` attribute, the weights from the module
tree (EMA weights first, as the official ``attempt_load`` does), cast to float32. Anchors
come from the checkpoint's buffer, not the YAML: EMA training shifts them by rounding.
Official checkpoints store neither T nor the input encoding; the caller supplies them.
The file is read by :func:`.torchfile.read_torch_file` (restricted unpickler, no ``torch.load``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .checks import check_config
from .safe_unpickle import InertObject
from .torchfile import read_torch_file

__all__ = ["OfficialCheckpoint", "guess_gen1", "official_to_ours_key", "read_official"]

SPIKEYOLO_MODEL = "ultralytics.nn.tasks.DetectionModel"
_BN_PARAM = re.compile(r"\.bn\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


@dataclass
class OfficialCheckpoint:
    """What an official checkpoint holds that we can use."""

    config: dict
    state_dict: dict[str, torch.Tensor]  # official key names, float32
    names: list[str]
    source: str  # "ema" or "model"
    extra: dict[str, Any] = field(default_factory=dict)
    family: str = "emsyolo"  # or "spikeyolo" (an ultralytics DetectionModel)
    time_steps: int | None = None  # stored by SpikeYOLO files (MS_GetT.T); EMS-YOLO files have none


def official_to_ours_key(key: str) -> str:
    """Official tdBN wrappers hold the BatchNorm one level down (``….bn.weight``); ours do not."""
    return _BN_PARAM.sub(r".\1", key)


MAX_MODULE_DEPTH = 64  # the official models nest 5 levels
MAX_MODULES = 100_000


def walk_modules(root: InertObject, path: Path, where: str) -> Iterator[tuple[str, InertObject]]:
    """``(prefix, module)`` for every module of a pickled tree (prefix ``""`` or ``"a.b."``),
    depth first, walked without recursion.

    A module that contains itself (a cycle), a tree nested deeper than
    :data:`MAX_MODULE_DEPTH` or with more than :data:`MAX_MODULES` modules is refused.
    """
    stack: list[tuple[InertObject, str, tuple[int, ...]]] = [(root, "", ())]
    visited = 0
    while stack:
        obj, prefix, ancestors = stack.pop()
        visited += 1
        if id(obj) in ancestors:
            raise CheckpointError(f"{path}: {where}: module {prefix.rstrip('.')} contains itself (a cycle)")
        if len(ancestors) > MAX_MODULE_DEPTH or visited > MAX_MODULES:
            raise CheckpointError(
                f"{path}: {where}: module tree deeper than {MAX_MODULE_DEPTH} levels or larger than {MAX_MODULES:,} modules"
            )
        yield prefix, obj
        ancestors = (*ancestors, id(obj))
        children = obj.state.get("_modules") or {}
        if not isinstance(children, dict):
            raise CheckpointError(f"{path}: {where}: {prefix}_modules is not a mapping of submodules")
        for name, child in reversed(list(children.items())):
            if child is None:
                continue
            if not isinstance(child, InertObject) or not isinstance(name, str):
                raise CheckpointError(
                    f"{path}: submodule {prefix}{name!s:.60} is a {type(child).__name__}, not a module"
                )
            stack.append((child, f"{prefix}{name}.", ancestors))


def module_state(root: InertObject, path: Path, where: str) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a pickled module tree (see :func:`walk_modules`)."""
    out: dict[str, torch.Tensor] = {}
    for prefix, obj in walk_modules(root, path, where):
        st = obj.state
        for group in ("_parameters", "_buffers"):
            entries = st.get(group) or {}
            skip = st.get("_non_persistent_buffers_set") if group == "_buffers" else None
            if not isinstance(entries, dict) or not isinstance(skip or set(), (set, frozenset)):
                raise CheckpointError(f"{path}: {where}: {prefix}{group} is not a mapping of tensors")
            for name, value in entries.items():
                if value is None or (isinstance(name, str) and skip and name in skip):
                    continue
                if not isinstance(name, str) or not isinstance(value, torch.Tensor):
                    raise CheckpointError(
                        f"{path}: {prefix}{name!s:.60} is a {type(value).__name__}, expected a tensor"
                    )
                out[prefix + name] = value.detach()
    return out


def read_official(path: str | Path) -> OfficialCheckpoint:
    """Load an official checkpoint through the restricted reader (nothing in it is executed)."""
    path = Path(path)
    return official_from_payload(read_torch_file(path), path)


def official_from_payload(ckpt: Any, path: Path) -> OfficialCheckpoint:
    """Check what :func:`read_torch_file` returned for an official checkpoint and extract it."""
    from .format import checkpoint_from_payload, is_ours

    if is_ours(ckpt):
        checkpoint_from_payload(ckpt, path)  # a damaged one says so
        raise CheckpointError(f"{path}: already an emsdeploy checkpoint, not an official one; use it as it is")
    if not isinstance(ckpt, dict) or not ({"model", "ema"} & set(ckpt)):
        raise CheckpointError(f"{path}: not an EMS-YOLO/YOLOv5 checkpoint (no 'model' or 'ema' entry)")
    source = "ema" if ckpt.get("ema") is not None else "model"
    model = ckpt.get(source)
    if isinstance(model, InertObject) and model._qualname == SPIKEYOLO_MODEL:
        from .official_spikeyolo import spikeyolo_from_payload

        return spikeyolo_from_payload(ckpt, model, source, path)
    if not isinstance(model, InertObject) or not model._qualname.endswith(".Model"):
        raise CheckpointError(f"{path}: ckpt['{source}'] is not a pickled models.yolo.Model")
    st = model.state
    cfg = st.get("yaml")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: the pickled Model has no 'yaml' architecture dict")
    check_config(cfg, str(path), f"ckpt['{source}'].yaml")
    raw = module_state(model, path, f"ckpt['{source}']")
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in raw.items()}
    names = st.get("names")
    nc = cfg["nc"]
    if not (isinstance(names, (list, tuple)) and len(names) == nc and all(isinstance(n, str) for n in names)):
        names = [str(i) for i in range(nc)]
    extra = {k: ckpt.get(k) for k in ("epoch", "date", "updates") if isinstance(ckpt.get(k), (int, str))}
    extra["yaml_file"] = st.get("yaml_file") if isinstance(st.get("yaml_file"), str) else None
    return OfficialCheckpoint(copy.deepcopy(cfg), sd, list(names), source, extra)


def guess_gen1(ckpt: OfficialCheckpoint) -> bool:
    """Gen1 models (frames encoding, T = 5) have two classes named car and pedestrian (often misspelt)."""
    names = [n.lower() for n in ckpt.names]
    return len(names) == 2 and names[0] == "car" and names[1].startswith(("pers", "ped"))
