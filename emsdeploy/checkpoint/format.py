"""The emsdeploy checkpoint format (DESIGN.md §5).

A ``torch.save`` file that holds only tensors and plain data, so it loads with
``weights_only=True``::

    {"format": "emsdeploy.checkpoint", "version": 1, "config": <config dict>,
     "state_dict": {...}, "time_steps": T, "encoding": "direct" | "frames", "meta": {...}}
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import CheckpointError
from ..fileio import atomic_write
from ..models import EMSYOLO, ENCODINGS, ConfigError

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

    def build(self) -> EMSYOLO:
        """The PyTorch model with these weights, in eval mode."""
        where = str(self.path or "checkpoint")
        try:
            model = EMSYOLO(self.config, self.time_steps, self.encoding)
        except ConfigError as e:
            raise CheckpointError(f"{where}: its config cannot be built: {e}") from None
        expected = model.state_dict()
        missing = sorted(set(expected) - set(self.state_dict))
        unexpected = sorted(set(self.state_dict) - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{where}: weights do not match the config: {len(missing)} missing (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )
        for k, v in expected.items():
            if tuple(self.state_dict[k].shape) != tuple(v.shape):
                raise CheckpointError(
                    f"{where}: {k} has shape {tuple(self.state_dict[k].shape)}, the config needs {tuple(v.shape)}"
                )
        model.load_state_dict(self.state_dict)
        model.names = self.names
        return model.eval()


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    if ckpt.encoding not in ENCODINGS:
        raise CheckpointError(f"encoding must be one of {ENCODINGS}, got {ckpt.encoding!r}")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": ckpt.config,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in ckpt.state_dict.items()},
        "time_steps": int(ckpt.time_steps),
        "encoding": ckpt.encoding,
        "meta": {"emsdeploy_version": __version__, **ckpt.meta},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def from_model(model: EMSYOLO, meta: dict | None = None) -> Checkpoint:
    return Checkpoint(
        model.config, model.state_dict(), model.time_steps, model.encoding, {"names": list(model.names), **(meta or {})}
    )


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load one of our checkpoints (``weights_only=True``). Raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise NotOursError(
            f"{path}: holds pickled objects, not an emsdeploy checkpoint ({str(e).splitlines()[0]})"
        ) from None
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NotOursError(f"{path}: not an emsdeploy checkpoint (no format tag {FORMAT!r})")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this emsdeploy reads ({VERSION}); upgrade emsdeploy"
        )
    for key, kind in (("config", dict), ("state_dict", dict), ("time_steps", int), ("encoding", str)):
        if not isinstance(data.get(key), kind):
            raise CheckpointError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    if data["encoding"] not in ENCODINGS:
        raise CheckpointError(f"{path}: encoding {data['encoding']!r} unsupported; supported: {', '.join(ENCODINGS)}")
    return Checkpoint(
        data["config"], data["state_dict"], data["time_steps"], data["encoding"], dict(data.get("meta") or {}), path
    )


class NotOursError(CheckpointError):
    """Readable, but not our format: the caller may try the official importer."""
