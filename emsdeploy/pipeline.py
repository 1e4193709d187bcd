"""From what a user names on the command line to an IR graph.

A checkpoint (ours or official) is built, traced at an input size and validated; an
``.emsir`` file is read as it is. Every command that works on graphs starts here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .checkpoint import Checkpoint, load_any
from .errors import InputError
from .fileio import check_limit
from .ir import Graph, Input, read_ir

if TYPE_CHECKING:
    from .models import EMSYOLO
    from .models.spikeyolo import SpikeYOLO

__all__ = ["Loaded", "check_run_size", "default_input_size", "load_graph", "parse_size", "source_or_default"]

IR_SUFFIXES = (".emsir", ".h5", ".hdf5")


@dataclass
class Loaded:
    graph: Graph
    checkpoint: Checkpoint | None  # None when the source was an IR file
    source: Path
    model: EMSYOLO | SpikeYOLO | None = None  # the model the graph was traced from (built once, reused by verify)


def default_input_size(ckpt: Checkpoint) -> tuple[int, int]:
    """The size the checkpoint was trained at, else the official sizes (640 COCO, 320 Gen1)."""
    size = ckpt.meta.get("input_size")
    if isinstance(size, int):
        return (size, size)
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return (int(size[0]), int(size[1]))
    return (640, 640) if ckpt.encoding == "direct" else (320, 320)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"128"`` -> (128, 128); ``"96x128"`` -> (96, 128) as (H, W)."""
    if text is None:
        return None
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        hw = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"input size {text!r}: use H or HxW, e.g. 128 or 96x128") from None
    if len(hw) == 1:
        hw = (hw[0], hw[0])
    if len(hw) != 2 or min(hw) < 1:
        raise InputError(f"input size {text!r}: use H or HxW with positive integers")
    return hw


def check_run_size(time_steps: int | None, size: Sequence[int] | None, where: str = "") -> None:
    """T and the input size within their limits (:mod:`emsdeploy.fileio.limits`): memory and
    run time grow with both, so a typo like ``-T 1000000000000`` fails at once, in one line."""
    if time_steps is not None:
        check_limit("time_steps", int(time_steps), f"{where}T")
    for side in size or ():
        check_limit("input_side", int(side), f"{where}input size {tuple(size)}")  # type: ignore[arg-type]


def source_or_default(source: str | Path | None) -> Path:
    """The SOURCE a user named, or the shipped checkpoint (an error if it is missing)."""
    from .errors import CheckpointError
    from .models import DEFAULT_CHECKPOINT

    if source is not None:
        return Path(source)
    if not DEFAULT_CHECKPOINT.is_file():
        raise CheckpointError(
            f"no SOURCE given and the shipped checkpoint {DEFAULT_CHECKPOINT} is not there; name a checkpoint"
        )
    return DEFAULT_CHECKPOINT


def load_graph(
    source: str | Path,
    input_size: tuple[int, int] | None = None,
    time_steps: int | None = None,
    encoding: str | None = None,
) -> Loaded:
    """Load ``source`` (checkpoint or IR file) as a validated IR graph."""
    from .sizes import check_input_size
    from .tracer import trace

    path = Path(source)
    check_run_size(time_steps, input_size)  # before anything is read or allocated
    if path.suffix.lower() in IR_SUFFIXES:
        graph = read_ir(path)
        traced = tuple(cast(Input, graph.input_node().op).shape)
        check_run_size(graph.time_steps, traced[1:], f"{path}: ")
        if input_size is not None and traced[1:] != tuple(input_size):
            raise InputError(f"{path}: the IR is traced for input {traced}; re-trace the checkpoint to change it")
        if time_steps is not None:
            graph = graph.copy()
            graph.attrs["time_steps"] = int(time_steps)
        return Loaded(graph, None, path)
    ckpt = load_any(path, time_steps, encoding)
    model = ckpt.model()
    size = input_size or default_input_size(ckpt)
    check_run_size(ckpt.time_steps, size, f"{path}: ")
    check_input_size(model, size, path)
    graph = trace(model, size, source=path.name)
    return Loaded(graph, ckpt, path, model)
