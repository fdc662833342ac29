"""Data-parallel helpers for ``torchrun``: process group, sampler, exact reductions.

``torchrun --nproc_per_node N main.py ...`` runs N processes (gloo on the CPU, NCCL on CUDA, one GPU each).
Each process seeds with ``--seed + rank`` (different augmentation per rank); DDP copies rank 0's initial
weights to every rank, so a run starts from the model a 1-process run with the same seed builds. Rank 0
alone writes logs, TensorBoard events and checkpoints.

Learning-rate scaling rule: ``-b`` is the batch per process, so the global batch is ``-b`` times the number
of processes; scale ``--lr`` linearly with the global batch (Goyal et al., 2017), as TSM's recipes do
(lr 0.01 for a global batch of 64, 0.02 for 128). N processes with ``-b B --lr L`` compute the same
gradient steps as one process with ``-b N*B --lr L``, except for BatchNorm layers in training mode, which
normalise with per-process statistics unless ``--sync_bn`` (CUDA only) shares them.
"""
import math
import os
from typing import Iterator, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn


def init_from_env(device_choice: str) -> Tuple[int, int]:
    """Join the process group that torchrun describes in the environment; (rank, world size).

    Without torchrun (no ``WORLD_SIZE`` in the environment) nothing is initialised: (0, 1). Under
    torchrun even one process joins a group, so ``--nproc_per_node 1`` runs the DDP path too.
    NCCL when the run uses CUDA, gloo on the CPU.
    """
    if 'WORLD_SIZE' not in os.environ:
        return 0, 1
    use_cuda = device_choice != 'cpu' and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    if not dist.is_initialized():
        dist.init_process_group(backend='nccl' if use_cuda else 'gloo')
    return dist.get_rank(), dist.get_world_size()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class SyncBatchNorm2d(nn.SyncBatchNorm, nn.BatchNorm2d):
    """SyncBatchNorm that is still a ``BatchNorm2d``, so TSN's partial BN (which counts BatchNorm2d) still
    freezes every BatchNorm but the first."""


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` of ``module`` in place by a ``SyncBatchNorm2d`` sharing its parameters
    and buffers (the optimizer's parameter references stay valid)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, nn.SyncBatchNorm):
            new = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_sync_batchnorm(child)
    return module


def wrap_model(model: nn.Module, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` (optionally with SyncBatchNorm, which needs CUDA)."""
    if sync_bn:
        if device.type != 'cuda':
            raise ValueError("--sync_bn needs CUDA: torch's SyncBatchNorm does not run on the CPU (gloo)")
        convert_sync_batchnorm(model)
    ids = [device.index] if device.type == 'cuda' else None
    # Parameters frozen by partial BN have requires_grad=False, which DDP skips by itself. Buffers
    # (BatchNorm statistics) are copied from rank 0 before every training forward (DDP's default).
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank (no-op in a single process).

    After a training step each rank has updated its statistics with its own batch; validation and the
    checkpoint (rank 0's) must see one model.
    """
    if is_distributed():
        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all processes (identity in a single process)."""
    if is_distributed():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on at least one (one small all-reduce; a host sync)."""
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)


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
