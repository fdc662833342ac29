"""Multigrid training: a schedule of mini-batch shapes (Wu, Girshick, He, Feichtenhofer, Krähenbühl, "A Multigrid
Method for Efficiently Training Video Models", CVPR 2020).

A mini-batch has a shape (B clips, T frames, S x S pixels). Multigrid training samples the videos on coarser grids
(fewer frames over the same time span, fewer pixels over the same field of view) with a larger batch, so that
B * T * S^2, the cost of a step, stays about the same while an epoch takes fewer steps (paper Sec. 3):

- the **long cycle** (Sec. 3.2, Fig. 2b) steps through four (time, space) factors of the base shape,
  ``LONG_CYCLE``, for several epochs each, ending in the base shape; within each learning-rate stage but the
  last one cycle, the last stage at the base shape (Sec. 3.3, "fine-tuning");
- the **short cycle** (Fig. 2c) changes the spatial size every iteration: S/2, S/sqrt(2), then the long-cycle
  phase's own size, with 4x, 2x, 1x the batch (``SHORT_CYCLE``);
- the learning rate is scaled linearly with the long cycle's batch (Sec. 3.3, after Goyal et al. 2017); the short
  cycle's per-iteration batches keep the phase's rate (as PySlowFast, the paper's code).

The factors are PySlowFast's defaults (``MULTIGRID.LONG_CYCLE_FACTORS``, ``SHORT_CYCLE_FACTORS``). Everything here
is a pure function of plain numbers (the flags are turned into them in ``builder.py``), plus the batch sampler of
the short cycle and the resize it uses.
"""
import contextlib
import math
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Sampler

# (time, space) factors of the long cycle's four phases, coarse to fine (paper Sec. 3.2; PySlowFast's defaults)
LONG_CYCLE: Tuple[Tuple[float, float], ...] = ((0.25, 2 ** -0.5), (0.5, 2 ** -0.5), (0.5, 1.0), (1.0, 1.0))
# spatial factors of the short cycle's first two iterations (of the base size); the third is the phase's own size
SHORT_CYCLE: Tuple[float, ...] = (0.5, 2 ** -0.5)


@dataclass(frozen=True)
class Shape:
    """A long-cycle mini-batch shape: ``batch`` times the base batch, ``frames`` per video, ``size`` x ``size``."""
    batch: int
    frames: int
    size: int


@dataclass(frozen=True)
class Phase:
    """Epochs ``[start, end)`` trained at ``shape``; ``cycle``: its iterations' (batch multiple of the shape's
    batch, crop size), repeated: ``((1, shape.size),)``, or the short cycle's three."""
    start: int
    end: int
    shape: Shape
    cycle: Tuple[Tuple[int, int], ...]


def grid_shape(frames: int, size: int, t_factor: float, s_factor: float, frame_share: float = 1.0) -> Shape:
    """The base (T, S) on a coarser grid: T' = round(T t), S' = round(S s), and the batch multiple that keeps a
    step's cost about constant: round(1 / ((S'/S)^2 (share T'/T + 1 - share))), at least 1. ``frame_share`` is the
    part of a clip's cost that grows with its frames: 1 for TSM and the clip backbones (B T S^2 constant, the
    paper's rule); less with full-video clustering, whose layers after the clustering point see G steps whatever
    F is (``frame_share`` measures it)."""
    t, s = max(1, round(frames * t_factor)), max(1, round(size * s_factor))
    relative = (s * s) / (size * size) * (frame_share * t / frames + 1.0 - frame_share)
    return Shape(max(1, round(1.0 / relative)), t, s)


def long_cycle_shapes(frames: int, size: int, frame_share: float = 1.0) -> List[Shape]:
    """The long cycle's four shapes for base (T, S), coarse to fine; the last is (1, T, S).

    E.g. T = 8, S = 32: (8, 2, 23), (4, 4, 23), (2, 4, 32), (1, 8, 32)."""
    return [grid_shape(frames, size, t, s, frame_share) for t, s in LONG_CYCLE]


def frame_share(model: nn.Module, frames: int, size: int, channels: int, device: torch.device) -> float:
    """The part of one clip's multiply-adds at (``frames``, ``size``) that is proportional to its frames, counted
    by torch's FLOP counter on two zero clips of F and F/2 frames, run by a copy of ``model`` on the meta device
    (shapes only, no arithmetic; ``model`` itself is untouched), or by ``model`` on ``device`` in eval mode without
    gradients where a layer has no meta kernel. c(F) = F e + c0, so the share F e / c(F) = 2 (c(F) - c(F/2)) /
    c(F). A clustered model (G fixed) gives less than 1: its early layers see F frames, the later ones G; a
    clustered SlowFast's Fast pathway counts in the share. ``channels``: values per frame (``TSN.sample_len``)."""
    import copy
    from torch.utils.flop_counter import FlopCounterMode

    def count(net: nn.Module, on: torch.device, t: int) -> float:
        with torch.no_grad(), net.sampled_frames(t), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, t * channels, size, size, device=on))
        return float(counter.get_total_flops())

    half_frames = max(1, frames // 2)
    try:
        meta = copy.deepcopy(model).to('meta').eval()
        full, half = count(meta, torch.device('meta'), frames), count(meta, torch.device('meta'), half_frames)
    except (NotImplementedError, RuntimeError):
        was_training = model.training
        model.eval()
        try:
            full, half = count(model, device, frames), count(model, device, half_frames)
        finally:
            model.train(was_training)
    if not full or frames == half_frames:
        return 1.0
    return min(1.0, max(0.0, (full - half) / full * frames / (frames - half_frames)))


def short_cycle(phase_size: int, base_size: int) -> List[Tuple[int, int]]:
    """The short cycle's three iterations inside a phase of crop ``phase_size``: (batch multiple of the phase's
    batch, crop size) for sizes round(S/2), round(S/sqrt 2) of the base S, then ``phase_size`` itself; the multiple
    is round((phase_size / size)^2). E.g. 32 of 32: [(4, 16), (2, 23), (1, 32)]."""
    sizes = [max(1, round(base_size * f)) for f in SHORT_CYCLE] + [phase_size]
    return [(max(1, round((phase_size / s) ** 2)), s) for s in sizes]


def apportion(epochs: int, weights: Sequence[float]) -> List[int]:
    """Split ``epochs`` into consecutive phases in proportion to ``weights`` (cumulative shares rounded), every
    phase at least one epoch; with fewer epochs than phases the first (coarsest) phases get none. -> epochs each."""
    total, acc, ends = sum(weights), 0.0, []
    for w in weights:
        acc += w
        ends.append(round(epochs * acc / total))
    ends[-1] = epochs
    for k in range(len(ends) - 2, -1, -1):  # from the last phase back: each keeps at least one epoch
        ends[k] = max(0, min(ends[k], ends[k + 1] - 1))
    return [e - s for s, e in zip([0] + ends[:-1], ends)]


def schedule(epochs: int, frames: int, size: int, long: bool, short: bool,
             stage_starts: Sequence[int] = (), frame_share: float = 1.0) -> List[Phase]:
    """The phases of a run of ``epochs`` at base (``frames``, ``size``).

    ``long``: within each learning-rate stage (``stage_starts``: the epochs where the rate drops; stages are
    [0, s1), [s1, s2), ..., [s_last, epochs)) but the last, one long cycle whose phases last in proportion to
    their mean batch (so each takes about as many steps); the last stage at the base shape. With a single stage
    (no drop inside the run, or a cosine rate) the whole run is one cycle. Without ``long``: one base phase.
    ``short``: the short cycle inside every phase (its mean batch counts in the long cycle's proportions).
    ``frame_share``: see ``grid_shape`` (1: the batch multiple keeps B T S^2 constant).
    """
    def phase(start: int, end: int, shape: Shape) -> Phase:
        return Phase(start, end, shape, tuple(short_cycle(shape.size, size)) if short else ((1, shape.size),))

    base = Shape(1, frames, size)
    if not long:
        return [phase(0, epochs, base)]
    shapes = long_cycle_shapes(frames, size, frame_share)
    weights = [s.batch * sum(m for m, _ in phase(0, 0, s).cycle) / len(phase(0, 0, s).cycle) for s in shapes]
    bounds = [0] + sorted({s for s in stage_starts if 0 < s < epochs}) + [epochs]
    cycled = bounds if len(bounds) == 2 else bounds[:-1]  # the stages that hold a cycle
    phases, start = [], 0
    for lo, hi in zip(cycled[:-1], cycled[1:]):
        for shape, n in zip(shapes, apportion(hi - lo, weights)):
            if n:
                phases.append(phase(start, start + n, shape))
                start += n
    if start < epochs:
        phases.append(phase(start, epochs, base))
    return phases


def phase_at(phases: Sequence[Phase], epoch: int) -> Phase:
    """The phase that trains ``epoch`` (the last one past the end)."""
    for phase in phases:
        if phase.start <= epoch < phase.end:
            return phase
    return phases[-1]


LR_RULES = ('linear', 'sqrt', 'none')


def lr_factor(phase: Phase, rule: str = 'linear') -> float:
    """The learning rate's multiple in ``phase`` from its long-cycle batch multiple b: ``linear`` b (the paper's
    Sec. 3.3, for SGD), ``sqrt`` b**0.5 (the usual rule for Adam-type optimizers), ``none`` 1."""
    if rule not in LR_RULES:
        raise ValueError(f'multigrid learning-rate rule {rule!r}: one of {", ".join(LR_RULES)}')
    return {'linear': float(phase.shape.batch), 'sqrt': phase.shape.batch ** 0.5, 'none': 1.0}[rule]


def step_cost(batch: int, frames: int, size: int) -> int:
    """B T S^2: the input values of a step, which a convolutional network's cost follows."""
    return batch * frames * size * size


def iteration_batches(phase: Phase, base_batch: int) -> List[int]:
    """The batch of each iteration of ``phase``'s cycle: one entry without the short cycle, three with it."""
    return [base_batch * phase.shape.batch * m for m, _ in phase.cycle]


def iteration_sizes(phase: Phase) -> List[int]:
    """The crop size of each iteration of ``phase``'s cycle (the loader gives ``phase.shape.size``)."""
    return [s for _, s in phase.cycle]


def batch_count(n: int, sizes: Sequence[int], start: int = 0) -> int:
    """Batches that ``n`` videos make when batch k (counted from ``start``) holds ``sizes[k % len(sizes)]``."""
    count = 0
    while n > 0:
        n -= sizes[(start + count) % len(sizes)]
        count += 1
    return count


def videos_before(iteration: int, sizes: Sequence[int]) -> int:
    """Videos the first ``iteration`` batches of an epoch hold (full batches; ``sizes`` as ``batch_count``)."""
    return sum(sizes[k % len(sizes)] for k in range(iteration))


class CycleBatchSampler(Sampler):
    """The short cycle's batches: the indices of ``sampler`` in batches of ``sizes[k % len(sizes)]`` for batch k,
    counted from ``start`` (a resumed epoch continues the cycle); the last batch may be short."""

    def __init__(self, sampler: Sampler, sizes: Sequence[int], start: int = 0) -> None:
        self.sampler, self.sizes, self.start = sampler, list(sizes), start

    def __iter__(self) -> Iterator[List[int]]:
        k, batch = self.start, []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.sizes[k % len(self.sizes)]:
                yield batch
                k, batch = k + 1, []
        if batch:
            yield batch

    def __len__(self) -> int:
        return batch_count(len(self.sampler), self.sizes, self.start)


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(N, T*C, H, W) -> (N, T*C, size, size): the same crops on a coarser grid (bilinear, antialiased), the short
    cycle's smaller sizes; unchanged when already ``size``."""
    if frames.shape[-2:] == (size, size):
        return frames
    return F.interpolate(frames, size=(size, size), mode='bilinear', align_corners=False, antialias=True)


def check_shapes(model: nn.Module, phases: Sequence[Phase], channels: int, device: torch.device) -> None:
    """Run ``model`` (a ``TSN``) once on a zero video at each (frames, size) the phases train at, in eval mode
    without gradients (no statistics change, no random draws), so that a network that cannot take one (a clip too
    short for its temporal pooling, a crop too small) stops the run before training, naming the shape.
    ``channels``: values per frame (``TSN.sample_len``); frames 0 (``--frames all``) are tried as G frames."""
    shapes = sorted({(p.shape.frames or model.num_segments, s) for p in phases for s in iteration_sizes(p)})
    was_training = model.training
    model.eval()
    try:
        for frames, size in shapes:
            try:
                with torch.no_grad(), model.sampled_frames(frames):
                    model(torch.zeros(1, frames * channels, size, size, device=device))
            except (RuntimeError, ValueError) as err:
                raise ValueError(f"--multigrid: {model.arch} cannot take {frames} frames at {size}x{size} px, a shape "
                                 f"of its schedule ({err}): raise --num_segments/--frames (the long cycle takes a "
                                 f"quarter) or --img_size (both take S/2 or S/sqrt2)") from err
    finally:
        model.train(was_training)


def describe(phases: Sequence[Phase], base_batch: int, lr_rule: str = 'linear') -> str:
    """One line per phase for the log: epochs, batch, frames, size (and the short cycle's sizes)."""
    lines = []
    for p in phases:
        short = '' if len(p.cycle) == 1 else ', short cycle ' + ' '.join(
            f'{b}x{s}px' for b, s in zip(iteration_batches(p, base_batch), iteration_sizes(p)))
        lines.append(f'epochs {p.start}-{p.end - 1}: batch {base_batch * p.shape.batch}, {p.shape.frames} frames, '
                     f'{p.shape.size}px, lr x{lr_factor(p, lr_rule):.3g}{short}')
    return '\n'.join(lines)


# --------------------------------------------------------------------------------------- sub-batch BatchNorm
def _sub_batch_forward(bn: nn.modules.batchnorm._BatchNorm, splits: int, x: torch.Tensor) -> torch.Tensor:
    """``bn`` in training mode with its statistics taken over each of ``splits`` consecutive sub-batches of ``x``
    (N, C, ...) apart, as PySlowFast's ``SubBatchNorm3d``; the running statistics move toward what PySlowFast
    aggregates for evaluation: the mean of the sub-batches' means, and the mean of their unbiased variances plus
    the variance of their means (the spread between sub-batches, which the whole batch's variance also holds)."""
    n, c = x.shape[0], x.shape[1]
    groups = x.float().reshape(splits, n // splits, c, -1)  # (k, N/k, C, rest): consecutive clips together
    mean = groups.mean(dim=(1, 3), keepdim=True)
    var = groups.var(dim=(1, 3), unbiased=False, keepdim=True)
    y = (groups - mean) * torch.rsqrt(var + bn.eps)
    if bn.affine:
        y = y * bn.weight.view(1, 1, c, 1) + bn.bias.view(1, 1, c, 1)
    if bn.track_running_stats:
        count = groups.shape[1] * groups.shape[3]
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            means = mean.flatten(1)  # (k, C)
            within = var.flatten(1).mean(dim=0) * count / max(count - 1, 1)
            between = ((means - means.mean(dim=0)) ** 2).mean(dim=0)
            bn.running_mean.mul_(1 - momentum).add_(means.mean(dim=0), alpha=momentum)
            bn.running_var.mul_(1 - momentum).add_(within + between, alpha=momentum)
    return y.reshape(x.shape).to(x.dtype)


def bn_sub_batches(n: int, base_batch: int) -> int:
    """The BatchNorm sub-batches of a batch of ``n`` clips: as many as base batches it holds, or the largest count
    below that which divides ``n`` (a short last batch); 1 for a batch of at most ``base_batch``."""
    if n <= base_batch:
        return 1
    return max(d for d in range(1, n // base_batch + 1) if n % d == 0)


@contextlib.contextmanager
def sub_batch_norm(model: nn.Module, splits: int) -> Iterator[None]:
    """Inside the block, every BatchNorm of ``model`` that is training (partial BN's frozen ones are not)
    normalises each of ``splits`` consecutive sub-batches with its own statistics, so that a long-cycle batch of
    ``splits`` times the base batch keeps the base batch's clips per BatchNorm (PySlowFast's ``BN_BASE_SIZE``,
    Wu et al. 2020). 1: nothing changes. Not for SyncBatchNorm (opts.py refuses ``--sync_bn`` with it)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
              and not isinstance(m, nn.SyncBatchNorm)] if splits > 1 else []
    for bn in layers:
        bn.forward = lambda x, bn=bn: _sub_batch_forward(bn, splits, x) if x.shape[0] % splits == 0 \
            else type(bn).forward(bn, x)
    try:
        yield
    finally:
        for bn in layers:
            del bn.forward

