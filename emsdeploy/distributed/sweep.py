"""A sweep over numbered samples, split across the ranks of a torchrun job and resumable.

The samples ``0..count-1`` are cut into shards of ``chunk`` consecutive samples; shard ``k``
belongs to rank ``k mod world size``. The cut depends on ``count`` and ``chunk`` only, so a
restart with another number of processes still finds the shards already done. Each rank
runs its shards in order; every shard's result (a JSON value) is written atomically to
``<results>/shard-<k>.json`` when it finishes, and ``--resume`` reads it back instead of
recomputing it. Rank 0 then gathers every shard through torch.distributed and returns them
in shard order, so the caller merges them exactly as one process would have met them.

Results pass through JSON on every path (written or not), so a resumed shard and a fresh
one give the same numbers. A shard that raises ends its rank at once with one line naming
the rank and the sample; torchrun then stops the other ranks. A rank that never arrives
makes the others fail after the collective timeout (``$EMSDEPLOY_DIST_TIMEOUT``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EmsdeployError
from ..fileio import atomic_write_text
from .world import World, current_world, process_group, timeout

__all__ = ["Cursor", "SweepError", "SweepSpec", "SweepStats", "run_sweep", "shard_ranges", "shards_of"]

MANIFEST = "sweep.json"
MAX_SHARD_BYTES = 256 * 2**20  # a shard file larger than this is not one we wrote
FORMAT = "emsdeploy-sweep"
VERSION = 1


class SweepError(EmsdeployError):
    """A shard failed (names rank and sample), or the results folder belongs to another sweep."""


@dataclass
class SweepSpec:
    """What to sweep.

    Attributes:
        kind: the command (``energy``, ``verify``, ``eval``, ``run``).
        count: number of samples.
        chunk: samples per shard (the unit of work, of result files and of resuming).
        fingerprint: everything the results depend on (source, inputs, options), JSON; a
            results folder made for another fingerprint is refused.
        results: folder for finished shards, or ``None`` to keep them in memory only.
        resume: reuse the shards already in ``results``.
        describe: the name of a sample, for error messages.
    """

    kind: str
    count: int
    chunk: int
    fingerprint: dict
    results: Path | None = None
    resume: bool = False
    describe: Callable[[int], str] = field(default=lambda i: "")

    def manifest(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "count": self.count,
            "chunk": self.chunk,
            "fingerprint": self.fingerprint,
        }

    def digest(self) -> str:
        text = json.dumps(self.manifest(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class SweepStats:
    """What this rank did: shards computed and reused, and the seconds spent computing."""

    computed: int = 0
    resumed: int = 0
    seconds: float = 0.0


class Cursor:
    """Tracks the sample being worked on, so that a failure can name it."""

    def __init__(self) -> None:
        self.sample: int | None = None

    def each(self, indices: Sequence[int]) -> Iterator[int]:
        for i in indices:
            self.sample = i
            yield i


def shard_ranges(count: int, chunk: int) -> list[range]:
    """The shards of ``count`` samples, ``chunk`` at a time (the last may be shorter)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return [range(s, min(s + chunk, count)) for s in range(0, count, chunk)]


def shards_of(n_shards: int, world: World) -> list[int]:
    """Shard numbers of ``world.rank``: every ``world.size``-th, so the ranks stay balanced."""
    return list(range(world.rank, n_shards, world.size))


def _shard_path(results: Path, k: int) -> Path:
    return results / f"shard-{k:06d}.json"


def _prepare_folder(spec: SweepSpec) -> None:
    """Rank 0: check (``--resume``) or (re)start the results folder with its manifest."""
    assert spec.results is not None
    results = spec.results
    if results.exists() and not results.is_dir():
        raise SweepError(f"--results {results}: exists and is not a folder")
    manifest_path = results / MANIFEST
    if spec.resume and manifest_path.is_file():
        found = _read_json(manifest_path)
        if found != json.loads(json.dumps(spec.manifest())):  # as JSON: tuples read back as lists
            raise SweepError(
                f"--results {results}: holds shards of another sweep ({MANIFEST} differs: kind, inputs, source or "
                "options changed); use a fresh folder, or drop --resume to overwrite it"
            )
        return
    if results.is_dir():
        for old in results.glob("shard-*.json"):
            old.unlink()
    atomic_write_text(manifest_path, json.dumps(spec.manifest(), indent=1, sort_keys=True) + "\n")


def _read_json(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_SHARD_BYTES:
        raise SweepError(f"{path}: {size} bytes, more than the {MAX_SHARD_BYTES} a sweep file may hold")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SweepError(f"{path}: not a sweep file ({e})") from None


def _load_shard(spec: SweepSpec, k: int, shard: range) -> str | None:
    """The finished shard ``k`` as JSON text, or ``None`` when it must be computed."""
    assert spec.results is not None
    path = _shard_path(spec.results, k)
    if not path.is_file():
        return None
    try:
        data = _read_json(path)
    except SweepError:
        return None  # unreadable: compute it again (atomic writes make this a foreign file)
    if (
        not isinstance(data, dict)
        or data.get("sweep") != spec.digest()
        or data.get("samples") != [shard.start, shard.stop]
    ):
        return None
    return json.dumps(data.get("payload"))


def _fail(world: World, spec: SweepSpec, cursor: Cursor, error: BaseException) -> SweepError:
    where = f"rank {world.rank}"
    if cursor.sample is not None:
        name = spec.describe(cursor.sample)
        where += f", sample {cursor.sample}" + (f" ({name})" if name else "")
    what = str(error) if isinstance(error, EmsdeployError) else f"{type(error).__name__}: {error}"
    return SweepError(f"{spec.kind} sweep failed at {where}: {what.splitlines()[0] if what else type(error).__name__}")


def run_sweep(
    spec: SweepSpec,
    work: Callable[[range, Cursor], Any],
    world: World | None = None,
    advance: Callable[[int], None] | None = None,
    stats: SweepStats | None = None,
) -> list[Any] | None:
    """Run ``work(shard, cursor)`` on this rank's shards; on rank 0 return all results in shard order.

    Args:
        work: computes one shard's JSON-able result; iterate ``cursor.each(shard)`` so that a
            failure names its sample.
        advance: called with the number of samples after each shard of this rank.
        stats: filled with what this rank computed and resumed.

    Returns:
        On rank 0 (or a single process): the shard results, decoded from JSON, in shard
        order. On other ranks: ``None`` (they print nothing).

    Raises:
        SweepError: a shard raised (the message names rank and sample), the results folder
            belongs to another sweep, or another rank did not arrive in time.
    """
    world = world or current_world()
    stats = stats if stats is not None else SweepStats()
    shards = shard_ranges(spec.count, spec.chunk)
    with process_group(world, "gloo"):
        if spec.results is not None:
            if world.leader:
                _prepare_folder(spec)
            _barrier(world, spec, "preparing the results folder")
        mine: dict[int, str] = {}
        cursor = Cursor()
        for k in shards_of(len(shards), world):
            text = _load_shard(spec, k, shards[k]) if spec.resume and spec.results is not None else None
            if text is None:
                t0 = time.perf_counter()
                cursor.sample = None
                try:
                    payload = work(shards[k], cursor)
                    text = json.dumps(payload)
                except Exception as e:  # any failure ends the job with one line naming rank and sample
                    raise _fail(world, spec, cursor, e) from None
                stats.seconds += time.perf_counter() - t0
                stats.computed += 1
                if spec.results is not None:
                    record = {"sweep": spec.digest(), "shard": k, "samples": [shards[k].start, shards[k].stop]}
                    atomic_write_text(
                        _shard_path(spec.results, k), json.dumps(record)[:-1] + f', "payload": {text}}}\n'
                    )
            else:
                stats.resumed += 1
            mine[k] = text
            if advance is not None:
                advance(len(shards[k]))
        gathered = _gather(world, spec, mine)
    if gathered is None:
        return None
    return [json.loads(gathered[k]) for k in range(len(shards))]


def _barrier(world: World, spec: SweepSpec, what: str) -> None:
    if not world.distributed:
        return
    import torch.distributed as dist

    try:
        dist.monitored_barrier(timeout=timeout(), wait_all_ranks=True)
    except RuntimeError as e:
        raise SweepError(f"{spec.kind} sweep, rank {world.rank}: {what}: {_first_line(e)}") from None


def _gather(world: World, spec: SweepSpec, mine: dict[int, str]) -> dict[int, str] | None:
    if not world.distributed:
        return mine
    import torch.distributed as dist

    _barrier(world, spec, "waiting for every rank to finish its shards")
    out: list[Any] | None = [None] * world.size if world.leader else None
    try:
        dist.gather_object(mine, out, dst=0)
    except RuntimeError as e:
        raise SweepError(f"{spec.kind} sweep, rank {world.rank}: gathering the shards: {_first_line(e)}") from None
    if out is None:
        return None
    merged: dict[int, str] = {}
    for part in out:
        merged.update(part)
    return merged


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
