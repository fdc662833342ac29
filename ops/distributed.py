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
import hashlib
import math
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn


def init_from_env(device_choice: str, join_timeout_s: float = 600.0) -> Tuple[int, int]:
    """Join the process group that torchrun describes in the environment; (rank, world size).

    Without torchrun (no ``WORLD_SIZE`` in the environment) nothing is initialised: (0, 1). Under
    torchrun even one process joins a group, so ``--nproc_per_node 1`` runs the DDP path too.
    NCCL when the run uses CUDA, gloo on the CPU. Joining waits at most ``join_timeout_s`` for the other
    ranks, then raises; collectives keep torch's default timeout (30 minutes for gloo).
    """
    if 'WORLD_SIZE' not in os.environ:
        return 0, 1
    use_cuda = device_choice != 'cpu' and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    if not dist.is_initialized():
        rank, world = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
        store = fresh_store(rank, world, timedelta(seconds=join_timeout_s))
        if store is None:  # plain env:// launch: rank 0 hosts a new store of its own
            dist.init_process_group(backend='nccl' if use_cuda else 'gloo')
        else:
            dist.init_process_group(backend='nccl' if use_cuda else 'gloo', store=store, rank=rank,
                                    world_size=world)
    return dist.get_rank(), dist.get_world_size()


STORE_KEY = 'tsm_fullvideo/process_group_store'


def fresh_store(rank: int, world: int, timeout: timedelta) -> Optional[dist.TCPStore]:
    """A key-value store for this attempt's process group, free of the keys of earlier attempts.

    Why (the elastic-restart hang): under torchrun (``TORCHELASTIC_USE_AGENT_STORE=True``) the workers'
    ``env://`` store is the agent's rendezvous TCPStore at ``MASTER_ADDR:MASTER_PORT``. The agent keeps that
    store, and the same port, across restarts, and torch prefixes only the agent's own keys by rendezvous
    round, not the process group's. After ``--max_restarts`` restarts the workers, the store still holds the
    killed attempt's gloo keys (each rank's listening address), so a new rank that reads a peer's key before
    that peer has rewritten it connects to the dead process. Seen here: gloo's "connectFullMesh failed ...
    Connection refused" naming the killed worker's old port (5 of 15 restarts; every time when one rank joins
    2 s later, tests/test_multinode.py with PLAIN_INIT=1), and once (1 of 15) a wait in the restarted join,
    which torch bounds only by the process-group timeout (30 minutes for gloo): the futex wait. Not the
    DataLoader: a killed worker's loader processes exit by themselves and hold no store or gloo keys.
    The restart count cannot serve as a key prefix: after a restart forced by another node's failure,
    torchrun restarts the healthy node's workers without counting it, so nodes can disagree.

    So rank 0 opens a new TCPStore on a free port and publishes ``host:port:nonce`` in the agent's store.
    The other ranks connect to the published address and accept it only when that store holds the same
    nonce; a value left by an earlier attempt points at a dead store (or one with another nonce), and they
    read the key again until ``timeout``. None outside torchrun's agent store (plain ``env://``: nothing
    stale there, rank 0's store dies with it).
    """
    if os.environ.get('TORCHELASTIC_USE_AGENT_STORE') != str(True):
        return None
    host, port = os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT'])
    agent = dist.TCPStore(host, port, world, is_master=False, timeout=timeout)
    if rank == 0:
        store = dist.TCPStore(host, 0, world, is_master=True, timeout=timeout, wait_for_workers=False)
        nonce = uuid.uuid4().hex
        store.set('nonce', nonce)
        agent.set(STORE_KEY, f'{host}:{store.port}:{nonce}')
        return store
    deadline = time.monotonic() + timeout.total_seconds()
    seen = ''
    while True:
        agent.wait([STORE_KEY])
        value = agent.get(STORE_KEY).decode()
        if value != seen:  # a new value, or a first look
            seen = value
            at, _, nonce = value.rpartition(':')
            store_host, _, store_port = at.rpartition(':')
            try:
                with socket.create_connection((store_host, int(store_port)), timeout=2):
                    pass  # refused at once by a dead store's port (TCPStore itself would retry it)
                store = dist.TCPStore(store_host, int(store_port), world, is_master=False,
                                      timeout=timedelta(seconds=5))
                if store.get('nonce').decode() == nonce:
                    store.set_timeout(timeout)
                    return store
            except (OSError, RuntimeError, ValueError):  # an earlier attempt's store (DistError is a RuntimeError)
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"rank {rank}: rank 0 published no live process-group store in {STORE_KEY} of torchrun's store "
                f"at {host}:{port} within {timeout.total_seconds():.0f} s (last value {seen!r}): did rank 0 "
                f"start, and can this node reach {host}?")
        time.sleep(0.2)


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


def gather_objects(value: object) -> List[object]:
    """Every rank's ``value``, in rank order (``[value]`` in a single process)."""
    if not is_distributed():
        return [value]
    values: List[object] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def files_digest(*paths: str) -> str:
    """SHA-1 of the files' bytes, in order ('missing' for a path that is not a file)."""
    digest = hashlib.sha1()
    for path in paths:
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                digest.update(f.read())
        else:
            digest.update(b'missing')
    return digest.hexdigest()


def resolve_auto_resume(checkpoint: str) -> str:
    """``--resume auto``: ``checkpoint`` (the run's ``ckpt.pth.tar``) if rank 0 finds it, else '' (start afresh).

    Saves are atomic (``ops.checkpoint.save_checkpoint``), so the file, when there, is complete. Rank 0
    decides for all; then every rank must see the file itself, or all ranks raise the same error naming
    the hosts that do not (a ``--root_model`` folder that the nodes do not share), instead of one rank
    failing to load while the others wait.
    """
    found = gather_objects((os.path.isfile(checkpoint), socket.gethostname()))
    if not found[0][0]:
        return ''
    blind = [f'rank {r} on {host}' for r, (sees, host) in enumerate(found) if not sees]
    if blind:
        raise FileNotFoundError(
            f"{checkpoint}: --resume auto: rank 0 on {found[0][1]} found this checkpoint, but {', '.join(blind)} "
            f"cannot see it. Every node must see the same --root_model folder (and the data), e.g. on a network "
            f"file system.")
    return checkpoint


def check_same_on_every_rank(what: str, value: str) -> None:
    """Raise on every rank unless all ranks hold the same ``value`` (e.g. a list file's digest); ``what``
    names it in the error."""
    values = gather_objects((value, socket.gethostname()))
    odd = [f'rank {r} on {host}' for r, (v, host) in enumerate(values) if v != values[0][0]]
    if odd:
        raise RuntimeError(f"{what} differs between rank 0 on {values[0][1]} and {', '.join(odd)}: every node "
                           f"must read the same data (share the data folder, or copy it identically)")


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
