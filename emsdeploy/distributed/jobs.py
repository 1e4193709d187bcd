"""The four dataset sweeps (``energy``, ``verify``, ``eval``, ``run``) as sharded jobs.

Each job says what one shard computes (as JSON) and how rank 0 merges the shards, so that the
result equals the single-process run's exactly:

* energy: integer event counts per layer and step, summed (one sample per shard);
* verify: per-sample comparisons, merged in sample order by the chain's own merge;
* eval: the detections of one batch per shard (the batches a single process would form),
  concatenated in order and scored once by pycocotools;
* run: one detection entry per sample, printed in sample order.

The commands call these only under torchrun or with ``--results``; otherwise they keep their
plain loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import InputError
from .sweep import Cursor, SweepError, SweepSpec, run_sweep
from .world import current_world

__all__ = [
    "SweepArgs",
    "counts_from_json",
    "counts_to_json",
    "energy_sweep",
    "file_digest",
    "run_sweep_entries",
    "sweep_options",
    "sweep_wanted",
    "validation_sweep",
    "verify_sweep",
]

F = TypeVar("F", bound=Callable[..., Any])


def sweep_options(f: F) -> F:
    """``--results DIR`` and ``--resume``, shared by every sweep command."""
    f = click.option(
        "--resume",
        is_flag=True,
        help="Reuse the finished shards in --results (after a crash or an elastic restart).",
    )(f)
    f = click.option(
        "--results",
        type=click.Path(file_okay=False),
        default=None,
        help="Write each finished shard here (atomically), so that --resume can skip it. "
        "Under torchrun every rank takes a share of the samples (docs/distributed.md).",
    )(f)
    return f


class SweepArgs:
    """The parsed ``--results``/``--resume`` pair."""

    def __init__(self, results: str | None, resume: bool) -> None:
        if resume and results is None:
            raise InputError("--resume needs --results DIR (the folder holding the finished shards)")
        self.results = Path(results) if results is not None else None
        self.resume = resume


def sweep_wanted(results: str | None, resume: bool = False) -> bool:
    """Use the sharded path under torchrun or with ``--results``; else the plain loop."""
    SweepArgs(results, resume)  # --resume without --results is an error on either path
    return results is not None or current_world().distributed


def file_digest(path: str | Path | None) -> str | None:
    """sha256 of a file (the source a sweep's results depend on); ``None`` for no file."""
    if path is None or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


T = TypeVar("T")


class _Forward:
    """Random access, forward only, to a lazy sequence of samples (each rank's shards rise).
    With ``at`` (the input set's own random access) a rank makes only the samples it counts."""

    def __init__(self, items: Iterable[T], at: Callable[[int], Any] | None = None) -> None:
        self._it: Iterator[T] = iter(items)
        self._next = 0
        self._at = at

    def get(self, i: int) -> Any:
        if self._at is not None:
            return self._at(i)
        if i < self._next:
            raise ValueError(f"sample {i} requested after sample {self._next - 1}: shards must come in order")
        while True:
            try:
                item = next(self._it)
            except StopIteration:
                raise InputError(f"the inputs ended before sample {i}") from None
            self._next += 1
            if self._next - 1 == i:
                return item


def _decoded(kind: str, args: SweepArgs, decode: Callable[[Any], Any], parts: list) -> list:
    """Shards back from JSON; a malformed one (a file edited in --results) is one clear error."""
    try:
        return [decode(p) for p in parts]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise SweepError(
            f"{kind} sweep: a shard in --results {args.results} is malformed ({type(e).__name__}: {e}); "
            "run without --resume to recompute it"
        ) from None


# --- energy ----------------------------------------------------------------------------------


# The per-step count arrays of a SynapseCount (summed over shards, differenced between snapshots).
SYNAPSE_ARRAYS = ("nonzero", "sops", "value_sum", "value_sops")
NEURON_ARRAYS = ("active", "nonzero_out", "nonzero")


def counts_to_json(counts) -> dict:
    """:class:`~emsdeploy.simulators.sops.SOPCounts` as plain JSON (integers stay integers)."""
    return {
        "time_steps": counts.time_steps,
        "samples": counts.samples,
        "synapses": [
            {
                **asdict(r),
                "input_kind": r.input_kind.value,
                **{f: getattr(r, f).tolist() for f in SYNAPSE_ARRAYS},
            }
            for r in counts.synapses
        ],
        "neurons": [{**asdict(n), **{f: getattr(n, f).tolist() for f in NEURON_ARRAYS}} for n in counts.neurons],
        "elementwise": [asdict(e) for e in counts.elementwise],
        "uncounted": dict(counts.uncounted),
    }


def counts_from_json(d: dict):
    import numpy as np

    from ..ir.kinds import Kind
    from ..simulators.sops import ElementwiseCount, NeuronCount, SOPCounts, SynapseCount

    def arr(v: list) -> np.ndarray:
        return np.asarray(v, dtype=np.int64)

    return SOPCounts(
        d["time_steps"],
        d["samples"],
        [
            SynapseCount(
                r["name"],
                r["source"],
                Kind(r["input_kind"]),
                tuple(r["input_shape"]),
                tuple(r["output_shape"]),
                r["flops"],
                r["dense_sops"],
                arr(r["nonzero"]),
                arr(r["sops"]),
                # integer-spike counts (absent from results written before they existed: zeros)
                arr(r.get("value_sum", [0] * len(r["sops"]))),
                arr(r.get("value_sops", [0] * len(r["sops"]))),
            )
            for r in d["synapses"]
        ],
        [
            NeuronCount(
                n["name"],
                n["op"],
                tuple(n["shape"]),
                n["fanin"],
                n["spiking"],
                arr(n["active"]),
                arr(n["nonzero_out"]),
                arr(n.get("nonzero", n["nonzero_out"])),  # older results: binary spikes, the same count
            )
            for n in d["neurons"]
        ],
        [ElementwiseCount(**e) for e in d["elementwise"]],
        dict(d["uncounted"]),
    )


def merge_counts(parts: list) -> Any:
    """Sum the counts of disjoint sample sets (same graph, same T): exact, being integers."""
    from dataclasses import replace

    first = parts[0]
    for p in parts[1:]:
        if p.time_steps != first.time_steps:
            raise InputError(f"shards ran T = {first.time_steps} and T = {p.time_steps}; counts need one T")
    return replace(
        first,
        samples=sum(p.samples for p in parts),
        synapses=[
            replace(r, **{f: sum(getattr(p.synapses[i], f) for p in parts) for f in SYNAPSE_ARRAYS})
            for i, r in enumerate(first.synapses)
        ],
        neurons=[
            replace(n, **{f: sum(getattr(p.neurons[i], f) for p in parts) for f in NEURON_ARRAYS})
            for i, n in enumerate(first.neurons)
        ],
    )


def _difference(after, before):
    """Counts of the samples run between two snapshots of one counter."""
    from dataclasses import replace

    if before is None:
        return after
    return replace(
        after,
        samples=after.samples - before.samples,
        synapses=[
            replace(r, **{f: getattr(r, f) - getattr(b, f) for f in SYNAPSE_ARRAYS})
            for r, b in zip(after.synapses, before.synapses)
        ],
        neurons=[
            replace(n, **{f: getattr(n, f) - getattr(b, f) for f in NEURON_ARRAYS})
            for n, b in zip(after.neurons, before.neurons)
        ],
    )


def energy_chunk(count: int) -> int:
    """Samples per energy shard. Counting one sample is cheap next to a shard's bookkeeping (a
    snapshot of every layer's counts, its JSON, the gather to rank 0): at one sample a shard that
    costs 12 % of the sweep (measured, bench/distributed.py). Up to 8 a shard, never so few shards
    that two processes could not share a short sweep; a function of ``count`` alone, so a resumed
    sweep finds the same shards whatever the number of processes."""
    return max(1, min(8, count // 16))


def energy_sweep(graph, inputs, args: SweepArgs, fingerprint: dict, advance: Callable[[], None] | None = None):
    """The SOP counts of ``inputs`` over this job's ranks (rank 0), ``None`` on other ranks."""
    from ..simulators.sops import SOPCounter

    samples = _Forward(inputs.samples(), inputs.at)
    counter: list[Any] = []  # built on first use: a rank whose shards are all resumed never needs it
    last: list[Any] = [None]

    def work(shard: range, cursor: Cursor) -> dict:
        if not counter:
            counter.append(SOPCounter(graph))
        for i in cursor.each(shard):
            counter[0].run(samples.get(i))
            if advance is not None:
                advance()
        now = counter[0].counts()
        part, last[0] = _difference(now, last[0]), now
        return counts_to_json(part)

    spec = SweepSpec(
        "energy",
        inputs.count,
        energy_chunk(inputs.count),
        fingerprint,
        args.results,
        args.resume,
        lambda i: f"input {i}",
    )
    parts = run_sweep(spec, work)
    if parts is None:
        return None
    if not parts:
        raise InputError(f"no samples to count in {inputs.description}")
    return merge_counts(_decoded("energy", args, counts_from_json, parts))


# --- verify ----------------------------------------------------------------------------------


def verify_sweep(graph, inputs, model, options, source: str, args: SweepArgs, fingerprint: dict, progress=None):
    """The verify report over this job's ranks (rank 0), ``None`` on other ranks."""
    from ..verify.chain import SampleResult, open_chain
    from ..verify.compare import Comparison, NodeComparison

    def to_json(r: SampleResult) -> dict:
        return {
            "name": r.name,
            "quant": r.quant,
            "comparisons": [
                {
                    "a": c.a,
                    "b": c.b,
                    "mode": c.mode,
                    "integer": c.integer,
                    "nodes": [asdict(n) for n in c.nodes],
                    "outputs": c.outputs,
                    "order": c.order,
                    "note": c.note,
                }
                for c in r.comparisons
            ],
        }

    def from_json(d: dict) -> SampleResult:
        comps = [Comparison(**{**c, "nodes": [NodeComparison(**n) for n in c["nodes"]]}) for c in d["comparisons"]]
        return SampleResult(d["name"], comps, d["quant"])

    samples = _Forward(inputs.samples(), inputs.at)
    with open_chain(graph, model, options, source) as chain:

        def work(shard: range, cursor: Cursor) -> list[dict]:
            return [to_json(chain.run(i, f"sample {i}", samples.get(i), progress)) for i in cursor.each(shard)]

        spec = SweepSpec("verify", inputs.count, 1, fingerprint, args.results, args.resume, lambda i: f"sample {i}")
        parts = run_sweep(spec, work)
        if parts is None:
            return None
        return chain.finish(_decoded("verify", args, from_json, [d for part in parts for d in part]))


# --- eval ------------------------------------------------------------------------------------


def validation_sweep(
    model, dataset, spec_name: str, batch_size: int, device: str | None, args: SweepArgs, fingerprint: dict
):
    """:func:`emsdeploy.cli.cmd_train.validation` over this job's ranks: one batch per shard.

    Returns the same dict on rank 0, ``None`` on other ranks.
    """
    import torch
    from torch.utils.data import Subset

    from ..cli.cmd_train import data_meta
    from ..models.training import firing_rates, pick_device, predict
    from ..models.training.evaluate import score

    world = current_world()
    if device is None and torch.cuda.is_available() and world.distributed:
        device = f"cuda:{world.local_rank}"

    def work(shard: range, cursor: Cursor) -> list[dict]:
        part = Subset(dataset, list(cursor.each(shard)))
        part.category_ids = dataset.category_ids  # type: ignore[attr-defined]
        return predict(model, part, batch_size, device)  # type: ignore[arg-type]

    spec = SweepSpec("eval", len(dataset), batch_size, fingerprint, args.results, args.resume, lambda i: f"image {i}")
    parts = run_sweep(spec, work)
    if parts is None:
        return None
    metrics = score(dataset, [r for part in parts for r in part])
    x = torch.stack([dataset[i].x for i in range(min(batch_size, len(dataset)))]).to(pick_device(device))
    rates = firing_rates(model.to(x.device), x)
    return {
        "metrics": {**metrics, "data": data_meta(dataset, spec_name)},
        "firing_rates": {k: round(v, 5) for k, v in rates.items()},
    }


# --- run -------------------------------------------------------------------------------------


def run_sweep_entries(
    samples: Iterable[Any], count: int, detect: Callable[[Any], dict], args: SweepArgs, fingerprint: dict
) -> list[dict] | None:
    """``detect(sample)`` for every input over this job's ranks, entries in input order (rank 0)."""
    stream = _Forward(samples)
    names: dict[int, str] = {}

    def work(shard: range, cursor: Cursor) -> list[dict]:
        out = []
        for i in cursor.each(shard):
            sample = stream.get(i)
            names[i] = sample.name
            out.append(detect(sample))
        return out

    spec = SweepSpec("run", count, 1, fingerprint, args.results, args.resume, lambda i: names.get(i, ""))
    parts = run_sweep(spec, work)
    return None if parts is None else [e for part in parts for e in part]
