"""The emsdeploy checkpoint format (DESIGN.md §5).

A ``torch.save`` file that holds only tensors and plain data::

    {"format": "emsdeploy.checkpoint", "version": 1, "config": <config dict>,
     "state_dict": {...}, "time_steps": T, "encoding": "direct" | "frames", "meta": {...},
     "sha256": <hex digest of config, T, encoding, names and every tensor's bytes>}

It is read by :func:`.torchfile.read_torch_file` (never ``torch.load``), then checked: plain
data only, config fields typed and bounded, the digest recomputed. Files written before the
digest existed (no ``sha256``) still load: each record's zip CRC-32 and size are checked.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .. import __version__
from ..errors import CheckpointError
from ..fileio import atomic_write
from ..models import ENCODINGS, ConfigError
from ..models.family import Detector, build_detector
from .checks import check_config, check_plain, state_digest
from .torchfile import read_torch_file

__all__ = ["FORMAT", "VERSION", "Checkpoint", "atomic_write", "load_checkpoint", "save_checkpoint"]

FORMAT = "emsdeploy.checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A model config, its weights, and how to feed it."""

    config: dict
    state_dict: dict[str, torch.Tensor]
    time_steps: int
    encoding: str
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def names(self) -> list[str]:
        names = self.meta.get("names")
        return list(names) if names else [str(i) for i in range(int(self.config["nc"]))]

    def model(self) -> Detector:
        """The model built once and kept, for the commands that trace it and then run it
        (verify): :meth:`build` makes a fresh one per call. Rebuilt if T or the encoding changed."""
        key = (self.time_steps, self.encoding)
        built = getattr(self, "_built", None)
        if built is None or built[0] != key:
            built = (key, self.build())
            self._built = built  # a plain attribute, not a field: never compared, copied or saved
        return built[1]

    def build(self) -> Detector:
        """The PyTorch model with these weights, in eval mode.

        The model is first built with its large tensors on the ``meta`` device (no memory)
        and its shapes compared with the checkpoint's, so a config cannot make us allocate
        more than the file's own tensors.
        """
        where = str(self.path or "checkpoint")
        check_config(self.config, where)
        expected = {k: v.shape for k, v in self._model(where, meta=True).state_dict().items()}
        self._check_weights(where, expected)
        model = self._model(where, meta=False)
        model.load_state_dict(self.state_dict)
        model.names = self.names
        return model.eval()

    def _model(self, where: str, meta: bool) -> Detector:
        try:
            with _LargeOnMeta() if meta else contextlib.nullcontext():
                return build_detector(self.config, self.time_steps, self.encoding)
        except ConfigError as e:
            raise CheckpointError(f"{where}: its config cannot be built: {e}") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as e:
            raise CheckpointError(f"{where}: its config cannot be built ({type(e).__name__}: {e})"[:400]) from None

    def _check_weights(self, where: str, expected: dict[str, torch.Size]) -> None:
        missing = sorted(set(expected) - set(self.state_dict))
        unexpected = sorted(set(self.state_dict) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{where}: weights do not match the config: {len(missing)} missing (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )
        for k, shape in expected.items():
            if tuple(self.state_dict[k].shape) != tuple(shape):
                raise CheckpointError(
                    f"{where}: {k} has shape {tuple(self.state_dict[k].shape)}, the config needs {tuple(shape)}"
                )


_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn}


class _LargeOnMeta(TorchFunctionMode):
    """Tensor factories asked for more than 4096 elements make ``meta`` tensors (no storage).

    Small ones (anchors, strides) stay real: the model builder computes with them.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and kwargs.get("device") is None:
            dims = args[0] if args and isinstance(args[0], (tuple, list, torch.Size)) else args
            if all(isinstance(d, int) for d in dims) and math.prod(dims) > 4096:
                kwargs["device"] = "meta"
        return func(*args, **kwargs)


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` in our format, with the SHA-256 of its content (atomically)."""
    if ckpt.encoding not in ENCODINGS:
        raise CheckpointError(f"encoding must be one of {ENCODINGS}, got {ckpt.encoding!r}")
    state = {k: v.detach().cpu().contiguous() for k, v in ckpt.state_dict.items()}
    meta = {"emsdeploy_version": __version__, **ckpt.meta}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": ckpt.config,
        "state_dict": state,
        "time_steps": int(ckpt.time_steps),
        "encoding": ckpt.encoding,
        "meta": meta,
        "sha256": state_digest(ckpt.config, state, int(ckpt.time_steps), ckpt.encoding, meta.get("names")),
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def from_model(model: Detector, meta: dict | None = None) -> Checkpoint:
    return Checkpoint(
        model.config, model.state_dict(), model.time_steps, model.encoding, {"names": list(model.names), **(meta or {})}
    )


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load one of our checkpoints. Raises :class:`CheckpointError` (:class:`NotOursError` if
    the file is a readable checkpoint of another kind)."""
    path = Path(path)
    return checkpoint_from_payload(read_torch_file(path), path)


_FIELDS = {"format", "version", "config", "state_dict", "time_steps", "encoding", "meta", "sha256"}


def is_ours(data: object) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT


def checkpoint_from_payload(data: object, path: Path) -> Checkpoint:
    """Check what :func:`read_torch_file` returned for one of our files and wrap it."""
    if not is_ours(data):
        raise NotOursError(f"{path}: not an emsdeploy checkpoint (no format tag {FORMAT!r})")
    assert isinstance(data, dict)
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r:.40} is newer than this emsdeploy reads ({VERSION}); upgrade emsdeploy"
        )
    for key, kind in (("config", dict), ("state_dict", dict), ("time_steps", int), ("encoding", str)):
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise CheckpointError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    unknown = sorted(str(k) for k in data if k not in _FIELDS)
    if unknown:
        raise CheckpointError(f"{path}: unknown field(s) {unknown[:3]}; fields are {', '.join(sorted(_FIELDS))}")
    if data["encoding"] not in ENCODINGS:
        raise CheckpointError(
            f"{path}: encoding {data['encoding']!r:.40} unsupported; supported: {', '.join(ENCODINGS)}"
        )
    if not 1 <= data["time_steps"] <= 10_000:
        raise CheckpointError(f"{path}: field 'time_steps' must be in [1, 10000], got {data['time_steps']}")
    check_config(data["config"], str(path))
    meta = data.get("meta") or {}
    check_plain(meta, str(path), "field 'meta'")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: field 'meta' must be a mapping")
    names = meta.get("names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{path}: field 'meta' names must be a list of strings")
    state = data["state_dict"]
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{path}: field 'state_dict' entry {k!r:.60} is not a named tensor")
    digest = data.get("sha256")
    if digest is not None:
        actual = state_digest(data["config"], state, data["time_steps"], data["encoding"], names)
        if digest != actual:
            raise CheckpointError(
                f"{path}: checksum mismatch (sha256 {str(digest)[:12]}… stored, {actual[:12]}… computed): the file is damaged or was edited"
            )
    return Checkpoint(data["config"], state, data["time_steps"], data["encoding"], dict(meta), path)


class NotOursError(CheckpointError):
    """Readable, but not our format: the caller may try the official importer."""
