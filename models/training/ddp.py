"""Data-parallel training that computes what one process computes on the same global batch.

Three things make a DistributedDataParallel step equal to the single-process step (up to
float summation order), not merely similar:

* **the batches**: every rank draws the single-process permutation (same generator, same
  draws) and takes its slice of each global batch (:class:`RankBatches`);
* **BN statistics**: mean and variance over the *global* batch, through differentiable
  all-reduces (:class:`SyncTdBatchNorm`, SpikeYOLO's :class:`SyncSeqBatchNorm2d`); per-rank
  statistics would normalise differently;
* **the loss**: YOLOv5's means (over positives, over cells) divide by global counts, and the
  per-rank losses add up to the single-process loss (:class:`~.loss.YoloLoss` ``reduce``; the
  anchor-free loss's normaliser is global the same way);
  DDP averages gradients over ranks, so each rank's loss is scaled by the world size.

Only torch.distributed is used; the caller opens the process group (gloo or nccl).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, RandomSampler, Sampler

from ..layers import TdBatchNorm, check_time_first
from ..spikeyolo.layers import SeqBatchNorm2d

__all__ = ["RankBatches", "SyncSeqBatchNorm2d", "SyncTdBatchNorm", "all_sum", "sync_batchnorm", "world_size"]


def world_size() -> int:
    """Ranks of the default process group; 1 when none is open."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (no gradient): for counts and for reporting metrics."""
    if world_size() > 1:
        x = x.clone()
        dist.all_reduce(x)
    return x


class RankBatches(Sampler[list[int]]):
    """This rank's slice of every global batch of a single-process shuffled loader.

    ``generator`` must be the DataLoader's own generator: the loader draws its worker seed
    from it before the sampler draws the permutation, exactly as with ``shuffle=True``.
    """

    def __init__(self, dataset, batch_size: int, drop_last: bool, generator: torch.Generator, rank: int, size: int):
        self.batches = BatchSampler(RandomSampler(dataset, generator=generator), batch_size, drop_last)
        self.rank, self.size = rank, size

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            if len(batch) % self.size:
                raise ValueError(
                    f"a batch of {len(batch)} samples cannot be split evenly over {self.size} ranks; "
                    "choose --batch-size (and a dataset size) divisible by the number of processes"
                )
            k = len(batch) // self.size
            yield batch[self.rank * k : (self.rank + 1) * k]


def _global_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Training-mode BN of a time-first ``x`` with statistics over every rank's share of the batch.

    Two passes, as a single process computes them: the global mean, then the global mean
    square deviation; both through ``torch.distributed.nn`` all-reduces, which carry the
    gradient back to every rank.
    """
    from torch.distributed.nn.functional import all_reduce

    t, b = x.shape[:2]
    flat = x.reshape(t * b, *x.shape[2:])
    count = torch.tensor(float(flat.numel() // flat.shape[1]), device=x.device)
    n = all_sum(count)
    mean = all_reduce(flat.sum((0, 2, 3))) / n
    centred = flat - mean[None, :, None, None]
    var = all_reduce((centred * centred).sum((0, 2, 3))) / n
    y = centred * torch.rsqrt(var + bn.eps)[None, :, None, None]
    y = y * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    momentum = float(bn.momentum if bn.momentum is not None else 0.1)
    tracked, running_mean, running_var = bn.num_batches_tracked, bn.running_mean, bn.running_var
    if tracked is not None and running_mean is not None and running_var is not None:  # as F.batch_norm
        with torch.no_grad():  # the running variance is the unbiased one
            tracked.add_(1)
            running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            unbiased = var.detach() * (n / (n - 1).clamp(min=1))
            running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
    return y.reshape(t, b, *y.shape[1:])


class SyncTdBatchNorm(TdBatchNorm):
    """tdBN whose training statistics span every rank's share of the batch
    (:func:`_global_batch_norm`). Eval mode uses the running statistics, as plain tdBN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_time_first(x, "TdBatchNorm")
        if not self.training or world_size() == 1:
            return super().forward(x)
        return _global_batch_norm(self, x)


class SyncSeqBatchNorm2d(SeqBatchNorm2d):
    """SpikeYOLO's BatchNorm over T·B with statistics over every rank's share of the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_time_first(x, "SeqBatchNorm2d")
        if not self.training or world_size() == 1:
            return super().forward(x)
        return _global_batch_norm(self, x)


_SYNCED: dict[type, type] = {TdBatchNorm: SyncTdBatchNorm, SeqBatchNorm2d: SyncSeqBatchNorm2d}
_PLAIN = {v: k for k, v in _SYNCED.items()}


def sync_batchnorm(model: nn.Module, on: bool = True) -> nn.Module:
    """Turn every tdBN (and SpikeYOLO BN) of ``model`` into its synchronised form (or back,
    ``on=False``), in place.

    Parameters and buffers stay where they are, so optimiser state and checkpoints are unaffected.
    """
    table = _SYNCED if on else _PLAIN
    for m in model.modules():
        if type(m) in table:
            m.__class__ = table[type(m)]
    return model
