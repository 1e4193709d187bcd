"""Which process am I: the rank and world size that ``torchrun`` puts in the environment.

torchrun (``python -m torch.distributed.run``) starts one process per rank and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the process group is then
opened from those (``env://``). Without them every command runs as the single rank 0 of 1.
Nothing here opens a socket itself: all traffic goes through torch.distributed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from ..errors import InputError

__all__ = ["TIMEOUT_ENV", "World", "current_world", "process_group", "timeout"]

TIMEOUT_ENV = "EMSDEPLOY_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800  # how long a collective waits for the slowest rank before failing


@dataclass(frozen=True)
class World:
    """``rank`` of ``size`` processes; ``local_rank`` picks the GPU on a machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """Rank 0 prints, plots and writes the reports and checkpoints."""
        return self.rank == 0


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise InputError(f"{name} is not set; start the command with torchrun, which sets RANK and WORLD_SIZE")
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"environment {name}={raw!r} is not an integer (torchrun sets it)") from None


def current_world() -> World:
    """The world torchrun describes in the environment, else a single process."""
    if "WORLD_SIZE" not in os.environ and "RANK" not in os.environ:
        return World()
    size, rank = _env_int("WORLD_SIZE"), _env_int("RANK")
    if size < 1 or not 0 <= rank < size:
        raise InputError(f"RANK={rank} WORLD_SIZE={size}: need 0 <= RANK < WORLD_SIZE")
    return World(rank, size, _env_int("LOCAL_RANK", 0))


def timeout() -> timedelta:
    """The collective timeout: ``$EMSDEPLOY_DIST_TIMEOUT`` seconds (default 1800)."""
    seconds = _env_int(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
    if seconds < 1:
        raise InputError(f"{TIMEOUT_ENV}={seconds}: must be a positive number of seconds")
    return timedelta(seconds=seconds)


_DRAIN_S = 0.2  # seconds for gloo's worker threads to release the last collectives' tensors


@contextmanager
def process_group(world: World, backend: str) -> Iterator[None]:
    """Open the default process group for ``world`` (no-op for one process), close it after.

    ``backend`` is ``gloo`` (CPU tensors, Python objects) or ``nccl`` (CUDA tensors). Every
    collective fails after :func:`timeout` instead of waiting forever for a dead rank.
    """
    import torch.distributed as dist

    if not world.distributed or dist.is_initialized():
        yield
        return
    # The env:// store, under a prefix of this attempt: a group torchrun restarted after a lost
    # worker must not read the addresses its predecessors published. torch >= 2.4 stopped
    # prefixing them per attempt (it counts on a fresh agent store per restart), and the
    # restarted ranks then sometimes dialled the dead rank's old port ("Connection refused").
    store, _, _ = next(dist.rendezvous("env://", world.rank, world.size, timeout=timeout()))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = dist.PrefixStore(f"/emsdeploy/attempt_{attempt}", store)
    dist.init_process_group(backend, store=store, rank=world.rank, world_size=world.size, timeout=timeout())
    yield
    # On success only (after a failure the peers may be gone; the process is ending anyway).
    # torch 2.3 can deadlock destroying a gloo group while a worker thread still releases a
    # Python-owned tensor of the last collective: the destructor joins that thread holding the
    # GIL, and the thread waits for the GIL (seen in a stuck rank: ~ProcessGroupGloo in
    # thread::join, the worker in ~AsyncGatherWork, reached through the barrier's own work,
    # which keeps the works before it). So: a barrier, then a pause with the GIL released, in
    # which the worker threads finish releasing those works, then the destruction.
    dist.barrier()
    time.sleep(_DRAIN_S)
    dist.destroy_process_group()
