"""Many processes, one result: sweeps and training under torchrun (docs/distributed.md).

Everything goes through torch.distributed (gloo for sweeps and CPU training, nccl for GPU
training); the launcher is PyTorch's own ``torchrun``. Nothing here opens a socket itself.
"""

from .jobs import (
    SweepArgs,
    energy_sweep,
    file_digest,
    run_sweep_entries,
    sweep_options,
    sweep_wanted,
    validation_sweep,
    verify_sweep,
)
from .sweep import Cursor, SweepError, SweepSpec, SweepStats, run_sweep, shard_ranges, shards_of
from .world import TIMEOUT_ENV, World, current_world, process_group, timeout

__all__ = [
    "TIMEOUT_ENV",
    "Cursor",
    "SweepArgs",
    "SweepError",
    "SweepSpec",
    "SweepStats",
    "World",
    "current_world",
    "energy_sweep",
    "file_digest",
    "process_group",
    "run_sweep",
    "run_sweep_entries",
    "shard_ranges",
    "shards_of",
    "sweep_options",
    "sweep_wanted",
    "timeout",
    "validation_sweep",
    "verify_sweep",
]
