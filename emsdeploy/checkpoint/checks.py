"""Checks on what a checkpoint's pickle produced, before any other code touches it.

A pickle can build structures no YAML file or ``torch.save`` of ours would: nested thousands
of levels deep, referring to themselves, shared exponentially, or with a dict where a number
belongs. Walking them naively raises ``RecursionError``/``TypeError`` far from the file, so
config and metadata are checked here, iteratively and within bounds, with errors that name
the file and the field. :func:`state_digest` is the SHA-256 our format stores.
"""

from __future__ import annotations

import hashlib
import json
from numbers import Real
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.spikeyolo.config import is_spikeyolo_config

__all__ = ["MAX_DEPTH", "check_config", "check_plain", "state_digest"]

MAX_DEPTH = 32  # the deepest official config nests 4 levels
MAX_NODES = 200_000
_LEAVES = (str, int, float, bool, type(None))
MAX_ROWS = 512
MAX_REPEAT = 64
MAX_WIDTH = 1 << 16


def check_plain(value: Any, where: str, field: str, tensors: bool = False) -> None:
    """``value`` is plain data (dicts, lists, tuples, str, numbers, None), nested at most
    :data:`MAX_DEPTH` deep with at most :data:`MAX_NODES` nodes; tensors only if allowed."""
    stack: list[tuple[Any, int, str]] = [(value, 0, field)]
    nodes = 0
    while stack:
        obj, depth, name = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise CheckpointError(f"{where}: {field} holds more than {MAX_NODES:,} values; refused")
        if isinstance(obj, _LEAVES) or (tensors and isinstance(obj, torch.Tensor)):
            continue
        if depth >= MAX_DEPTH:
            raise CheckpointError(
                f"{where}: {name} is nested more than {MAX_DEPTH} levels deep (or refers to itself); refused"
            )
        if isinstance(obj, dict):
            for k, v in obj.items():
                if not isinstance(k, (str, int, float, bool)):
                    raise CheckpointError(f"{where}: {name} has a {type(k).__name__} key; only plain keys are allowed")
                stack.append((v, depth + 1, f"{name}[{k!r:.40}]" if depth < 2 else name))
        elif isinstance(obj, (list, tuple)):
            stack.extend((v, depth + 1, f"{name}[{i}]" if depth < 2 else name) for i, v in enumerate(obj))
        else:
            raise CheckpointError(
                f"{where}: {name} is a {type(obj).__name__}; only plain data (dict, list, str, numbers) is allowed"
            )


def _number(cfg: dict, key: str, where: str, field: str, lo: float, hi: float, integer: bool = False) -> None:
    v = cfg[key]
    ok = isinstance(v, int) if integer else isinstance(v, Real)
    if isinstance(v, bool) or not ok or not (lo <= v <= hi):
        kind = "an integer" if integer else "a number"
        raise CheckpointError(f"{where}: {field}[{key!r}] must be {kind} in [{lo}, {hi}], got {v!r:.60}")


def check_config(cfg: Any, where: str, field: str = "config") -> None:
    """A model config's fields have the types and sizes the model builder expects.

    Bounds keep the model that would be built small enough to construct (layers, repeats,
    widths); the builder then checks the architecture itself.
    """
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{where}: {field} is a {type(cfg).__name__}, not a mapping")
    check_plain(cfg, where, field)
    spikeyolo = is_spikeyolo_config(cfg)
    needed = ("nc", "backbone", "head") if spikeyolo else ("nc", "anchors", "backbone", "head")
    for key in needed:
        if key not in cfg:
            raise CheckpointError(f"{where}: {field} has no {key!r} field (needs {', '.join(needed)})")
    _number(cfg, "nc", where, field, 1, 100_000, integer=True)
    if spikeyolo:
        _check_spikeyolo(cfg, where, field)
    for key, lo, hi, integer in (
        ("depth_multiple", 0, 16, False),
        ("width_multiple", 0, 16, False),
        ("ch", 1, 64, True),
        ("tau", 0, 1e6, False),
        ("v_th", -1e6, 1e6, False),
        ("surrogate_width", 0, 1e6, False),
    ):
        if key in cfg:
            _number(cfg, key, where, field, lo, hi, integer)
    if "silu_inplace" in cfg and not isinstance(cfg["silu_inplace"], bool):
        raise CheckpointError(f"{where}: {field}['silu_inplace'] must be true or false")
    anchors = cfg.get("anchors", 1)  # SpikeYOLO's head is anchor-free
    if not (isinstance(anchors, int) and 0 < anchors <= 64) and not (
        isinstance(anchors, list)
        and 0 < len(anchors) <= 16
        and all(isinstance(a, list) and len(a) <= 64 and all(isinstance(x, Real) for x in a) for a in anchors)
    ):
        raise CheckpointError(f"{where}: {field}['anchors'] must be a list of number lists, got {anchors!r:.80}")
    rows = 0
    for part in ("backbone", "head"):
        if not isinstance(cfg[part], list):
            raise CheckpointError(f"{where}: {field}[{part!r}] must be a list of layer rows")
        for i, row in enumerate(cfg[part]):
            rows += 1
            at = f"{field}[{part!r}] row {i}"
            if not (isinstance(row, (list, tuple)) and len(row) == 4):
                raise CheckpointError(f"{where}: {at} must be [from, number, module, args], got {row!r:.80}")
            src, n, module, args = row
            if not (isinstance(src, int) or (isinstance(src, list) and all(isinstance(s, int) for s in src))):
                raise CheckpointError(f"{where}: {at}: 'from' must be an integer or a list of integers")
            if isinstance(n, bool) or not isinstance(n, int) or not (1 <= n <= MAX_REPEAT):
                raise CheckpointError(f"{where}: {at}: 'number' must be an integer in [1, {MAX_REPEAT}], got {n!r:.40}")
            if not isinstance(module, str):
                raise CheckpointError(f"{where}: {at}: 'module' must be a class name, got {module!r:.40}")
            if not isinstance(args, list) or any(
                isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_WIDTH for a in args
            ):
                raise CheckpointError(f"{where}: {at}: 'args' must be a list of small values, got {args!r:.80}")
    if rows > MAX_ROWS:
        raise CheckpointError(f"{where}: {field} has {rows} layer rows; at most {MAX_ROWS}")


def _check_spikeyolo(cfg: dict, where: str, field: str) -> None:
    """SpikeYOLO's own keys: ``scales`` rows ``[depth, width, max_channels]``, ``scale``, I-LIF and BN settings."""
    for key, lo, hi, integer in (("decay", 0, 1, False), ("levels", 1, 255, True), ("bn_eps", 1e-12, 1, False)):
        if key in cfg:
            _number(cfg, key, where, field, lo, hi, integer)
    scales = cfg.get("scales")
    if scales is None:
        return
    if not (isinstance(scales, dict) and 0 < len(scales) <= 16):
        raise CheckpointError(
            f"{where}: {field}['scales'] must map at most 16 scale names to [depth, width, max_channels]"
        )
    for name, row in scales.items():
        if not (
            isinstance(row, list)
            and len(row) == 3
            and all(isinstance(v, Real) and not isinstance(v, bool) and 0 < v <= MAX_WIDTH for v in row)
            and row[0] <= 16
            and row[1] <= 16
        ):
            raise CheckpointError(
                f"{where}: {field}['scales'][{name!r:.20}] must be [depth <= 16, width <= 16, max_channels], got {row!r:.60}"
            )
    if cfg.get("scale") not in scales:
        raise CheckpointError(
            f"{where}: {field}['scale'] must be one of {', '.join(map(str, scales))}, got {cfg.get('scale')!r:.20}"
        )


def state_digest(
    config: dict, state_dict: dict[str, torch.Tensor], time_steps: int, encoding: str, names: Any = None
) -> str:
    """SHA-256 of a checkpoint's content in our own canonical form.

    Covers the config (canonical JSON), T, the encoding, the class names and, per tensor in
    key order, its name, dtype, shape and raw little-endian bytes; the rest of ``meta``
    (provenance) is not covered.
    """
    h = hashlib.sha256()
    head = {"config": config, "time_steps": int(time_steps), "encoding": encoding, "names": names}
    try:
        text = json.dumps(head, sort_keys=True, default=repr)
    except TypeError:  # keys of mixed types cannot be sorted; pickles keep insertion order
        text = repr(head)
    h.update(text.encode())
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(json.dumps([key, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
