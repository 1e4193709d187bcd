"""Which inputs an energy report averages over, and the counting loop over them.

With ``--input`` the user's image, folder or ``.npy`` (see :mod:`emsdeploy.inputs`). Without it:
the first samples of the validation split of the synthetic dataset the checkpoint was trained
on (its ``meta["data"]`` recipe), else a deterministic random input. The report says which,
and why when it had to fall back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..inputs import count_inputs, iter_inputs
from ..ir import Graph
from ..simulators.sops import SOPCounter, SOPCounts

__all__ = ["DEFAULT_SAMPLES", "InputSet", "default_inputs", "measure", "random_inputs", "user_inputs"]

DEFAULT_SAMPLES = 8
RANDOM_SEED = 0
EVENT_DENSITY = 0.02  # random event frames: this fraction of pixels carries an ON or OFF event


@dataclass
class InputSet:
    """Samples to average over: ``samples()`` yields ``[1, C, H, W]`` or ``[1, T, C, H, W]`` tensors."""

    kind: str  # "user", "synthetic-val" or "random"
    description: str
    count: int
    samples: Callable[[], Iterator[torch.Tensor]]
    note: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "description": self.description, "samples": self.count, "note": self.note}


def _input_info(graph: Graph) -> tuple[tuple[int, int, int], str]:
    node = graph.input_node()
    return tuple(node.op.shape), node.op.encoding  # type: ignore[attr-defined]


def user_inputs(spec: str | Path, graph: Graph, limit: int | None, time_steps: int | None) -> InputSet:
    """The samples of an image, a folder of images or a ``.npy`` (at most ``limit``)."""
    shape, encoding = _input_info(graph)
    total = count_inputs(spec, encoding)  # raises InputError for an empty folder or unreadable array
    count = min(total, limit) if limit else total
    frames_t = time_steps if encoding == "frames" else None

    def samples() -> Iterator[torch.Tensor]:
        for i, sample in enumerate(iter_inputs(spec, shape, encoding, frames_t)):
            if i >= count:
                return
            yield sample.x

    return InputSet("user", f"{spec} ({count} of {total} samples)", count, samples)


def random_inputs(graph: Graph, count: int, time_steps: int | None, note: str = "") -> InputSet:
    """Deterministic random inputs: uniform pixels (direct) or sparse ON/OFF events on grey (frames)."""
    shape, encoding = _input_info(graph)
    T = int(time_steps or graph.time_steps)

    def samples() -> Iterator[torch.Tensor]:
        gen = torch.Generator().manual_seed(RANDOM_SEED)
        for _ in range(count):
            if encoding == "direct":
                yield torch.rand((1, *shape), generator=gen)
            else:
                events = torch.rand((1, T, *shape), generator=gen) < EVENT_DENSITY
                polarity = (torch.rand((1, T, *shape), generator=gen) < 0.5).float()
                yield torch.where(events, polarity, torch.full_like(polarity, 0.5))

    what = (
        "uniform [0, 1] images" if encoding == "direct" else f"event frames ({EVENT_DENSITY:.0%} ON/OFF events on grey)"
    )
    return InputSet("random", f"{count} deterministic random {what}, seed {RANDOM_SEED}", count, samples, note)


def default_inputs(graph: Graph, meta: dict | None, count: int, time_steps: int | None) -> InputSet:
    """The checkpoint's synthetic validation split if its meta names one and it fits; else random."""
    data = (meta or {}).get("data")
    if not isinstance(data, dict) or "kind" not in data:
        return random_inputs(graph, count, time_steps, "the checkpoint names no synthetic dataset")
    try:
        from ..models.data import dataset_from_recipe

        dataset = dataset_from_recipe(data, "val")
        first = dataset[0].x
    except (ImportError, ValueError, TypeError, KeyError, IndexError) as e:
        return random_inputs(graph, count, time_steps, f"cannot rebuild the checkpoint's dataset ({e})")
    shape, encoding = _input_info(graph)
    if dataset.encoding != encoding or tuple(first.shape[-3:]) != tuple(shape):
        return random_inputs(
            graph,
            count,
            time_steps,
            f"the checkpoint's dataset gives {dataset.encoding} inputs of {tuple(first.shape)}, the graph takes "
            f"{encoding} {tuple(shape)}",
        )
    if encoding == "frames" and time_steps is not None and first.shape[0] != time_steps:
        return random_inputs(
            graph,
            count,
            time_steps,
            f"the checkpoint's dataset has {first.shape[0]} frames, --time-steps is {time_steps}",
        )
    n = min(count, len(dataset))

    def samples() -> Iterator[torch.Tensor]:
        for i in range(n):
            yield dataset[i].x.unsqueeze(0)

    recipe = ", ".join(f"{k}={v}" for k, v in data.items() if k != "split")
    return InputSet("synthetic-val", f"first {n} samples of the synthetic val split ({recipe})", n, samples)


def measure(
    graph: Graph, inputs: InputSet, advance: Callable[[], None] | None = None, dtype: torch.dtype = torch.float32
) -> SOPCounts:
    """Count every sample of ``inputs`` (one at a time: memory stays flat); ``advance`` after each."""
    counter = SOPCounter(graph, dtype)
    for x in inputs.samples():
        counter.run(x)
        if advance is not None:
            advance()
    if counter.samples == 0:
        raise InputError(f"no samples to count in {inputs.description}")
    return counter.counts()
