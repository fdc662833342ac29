"""Data-parallel helpers for ``torchrun``: process group, sampler, exact reductions.

Learning-rate scaling rule: ``-b`` is the batch per process, so the global batch is ``-b`` times the number
of processes; scale ``--lr`` linearly with the global batch (Goyal et al., 2017), as TSM's recipes do
(lr 0.01 for a global batch of 64, 0.02 for 128).
"""
import math
import os
from typing import Iterator, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn


def init_from_env(device_choice: str) -> Tuple[int, int]:
    """Join the process group that torchrun describes in the environment; (rank, world size).

    Without torchrun (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) nothing is initialised: (0, 1).
    NCCL when the run uses CUDA, gloo on the CPU.
    """
    world = int(os.environ.get('WORLD_SIZE', 1))
    if world <= 1:
        return 0, 1
    use_cuda = device_choice != 'cpu' and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    if not dist.is_initialized():
        dist.init_process_group(backend='nccl' if use_cuda else 'gloo')
    return dist.get_rank(), dist.get_world_size()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def wrap_model(model: nn.Module, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` (optionally with SyncBatchNorm)."""
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == 'cuda' else None
    # Parameters frozen by partial BN have requires_grad=False, which DDP skips by itself.
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False,
                                               broadcast_buffers=True)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all processes (identity in a single process)."""
    if is_distributed():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def cleanup() -> None:
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


class EpochSampler(torch.utils.data.Sampler):
    """Indices of this rank for one epoch: a seeded permutation (training) or the plain order (validation).

    ``pad=True`` (training) repeats the start of the permutation so that every rank gets as many samples
    (DDP needs equal step counts); ``pad=False`` (validation) gives each sample to exactly one rank, so
    summed counts are exact. ``set_epoch(epoch, skip)`` reseeds and drops the first ``skip`` samples of
    this rank, which is how a run resumed from a mid-epoch checkpoint continues where it stopped.
    """

    def __init__(self, n: int, shuffle: bool, seed: int, rank: int = 0, world: int = 1, pad: bool = True) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world, self.pad = rank, world, pad
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        if self.pad and self.world > 1:
            total = math.ceil(self.n / self.world) * self.world
            order = torch.cat([order, order[:total - self.n]])
        return order[self.rank::self.world][self.skip:]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices().tolist())

    def __len__(self) -> int:
        return len(self._indices())
