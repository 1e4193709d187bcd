"""Checkpoint I/O: our format, and safe import of official EMS-YOLO and SpikeYOLO checkpoints."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .format import (
    FORMAT,
    VERSION,
    Checkpoint,
    NotOursError,
    atomic_write,
    checkpoint_from_payload,
    from_model,
    is_ours,
    load_checkpoint,
    save_checkpoint,
)
from .official import OfficialCheckpoint, guess_gen1, official_from_payload, official_to_ours_key, read_official
from .torchfile import read_torch_file

__all__ = [
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "NotOursError",
    "OfficialCheckpoint",
    "atomic_write",
    "from_model",
    "import_official",
    "load_any",
    "load_checkpoint",
    "official_defaults",
    "read_official",
    "read_torch_file",
    "save_checkpoint",
]

DEFAULT_TIME_STEPS = 4  # the paper's COCO setting
GEN1_TIME_STEPS = 5  # the paper's and official code's Gen1 setting


def official_defaults(off: OfficialCheckpoint) -> tuple[int, str]:
    """T and encoding to assume when the user gives none: Gen1-looking models get frames, T = 5;
    SpikeYOLO files store their T (``MS_GetT.T``) and repeat the image (direct)."""
    if off.time_steps is not None:
        return off.time_steps, "direct"
    return (GEN1_TIME_STEPS, "frames") if guess_gen1(off) else (DEFAULT_TIME_STEPS, "direct")


def import_official(path: str | Path, time_steps: int | None = None, encoding: str | None = None) -> Checkpoint:
    """Convert an official checkpoint to ours (in memory). Raises :class:`CheckpointError`."""
    return _from_official(read_official(path), path, time_steps, encoding)


def _from_official(
    off: OfficialCheckpoint, path: str | Path, time_steps: int | None, encoding: str | None
) -> Checkpoint:
    t_default, e_default = official_defaults(off)
    spikeyolo = off.family == "spikeyolo"
    state_dict = dict(off.state_dict) if spikeyolo else {official_to_ours_key(k): v for k, v in off.state_dict.items()}
    meta = {
        "names": off.names,
        "source": {"format": f"official-{off.family}", "file": Path(path).name, "weights": off.source, **off.extra},
        "assumed": {
            k: v
            for k, v in (("time_steps", t_default), ("encoding", e_default))
            if not spikeyolo  # SpikeYOLO files store T, and MS_GetT repeats the image (direct)
            and ((k == "time_steps" and time_steps is None) or (k == "encoding" and encoding is None))
        },
    }
    if guess_gen1(off) and (encoding or e_default) == "frames":
        meta["gen1_mode"] = "official"  # what the official Gen1 loader fed it: bin 0 at every step (docs/gen1.md)
    ckpt = Checkpoint(off.config, state_dict, time_steps or t_default, encoding or e_default, meta, Path(path))
    model = ckpt.model()  # fail now, naming the file, if config and weights disagree (the model is kept)
    stored = off.extra.get("stride")
    if stored is not None and [float(s) for s in model.stride.tolist()] != stored:
        raise CheckpointError(
            f"{path}: the file's strides {stored} differ from the {model.stride.tolist()} its config implies"
        )
    return ckpt


def load_any(path: str | Path, time_steps: int | None = None, encoding: str | None = None) -> Checkpoint:
    """Load our checkpoint, or import an official one (T and encoding then from the arguments).

    The file is read once, by :func:`read_torch_file` (never ``torch.load``); its content
    decides which of the two it is.
    """
    path = Path(path)
    data = read_torch_file(path)
    if not is_ours(data):
        return _from_official(official_from_payload(data, path), path, time_steps, encoding)
    ckpt = checkpoint_from_payload(data, path)
    if time_steps is not None:
        ckpt.time_steps = int(time_steps)
    if encoding is not None and encoding != ckpt.encoding:
        raise CheckpointError(
            f"{path}: trained for the {ckpt.encoding!r} encoding; --encoding {encoding} does not apply"
        )
    return ckpt
