"""Train and evaluate TSM / full-video clustering models: ``python main.py DATASET MODALITY [flags]``.

Single process by default; ``torchrun --nproc_per_node N main.py ...`` trains data-parallel (gloo on the
CPU, NCCL on CUDA). ``--evaluate --resume CKPT`` validates a checkpoint and prints its top-1.
"""
import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from tqdm import tqdm

from builder import (adjust_learning_rate, build_dataset, build_model, build_optimizer, dataset_config,
                     load_tune_from, make_loader, multigrid_args, multigrid_frames, multigrid_phases, store_name,
                     use_fc_lr5, use_stored_settings, use_tune_from_alpha)
from opts import check_training, parse_args
from ops import distributed as dist_utils
from ops import multigrid as mg
from ops.checkpoint import (check_writable, link_checkpoint, load_checkpoint, load_model_weights,
                            remove_stale_temporaries, rng_state, save_checkpoint, set_rng_state)
from ops.chunked import freeze_early_batchnorm
from ops.dataset_config import DatasetConfig
from ops.run_log import RunLog
from ops.runtime import describe_machine, select_device, set_seed
from ops.train_step import StepTimer, autocast, train_step
from ops.utils import AverageMeter, correct_topk


def to_device(batch, device: torch.device):
    """A batch's frames, labels and lengths on ``device`` (channels-last, if asked for, is applied per frame
    inside TSN)."""
    frames, labels, lengths = batch[0], batch[1], batch[2]
    frames = frames.to(device, non_blocking=True)
    return frames, labels.to(device, non_blocking=True), lengths.to(device, non_blocking=True)


def nonfinite_loss_message(value: float, epoch: int, iteration: int, optimizer, frames: torch.Tensor,
                           args: argparse.Namespace) -> str:
    """One line for a training loss that became inf or NaN: where (epoch, iteration), the batch's shape, the
    learning rate and precision, and what usually helps."""
    shape = 'x'.join(str(d) for d in frames.shape)
    lr = optimizer.param_groups[-1]['lr']
    rule = ' (or --multigrid_lr sqrt or none)' if args.multigrid else ''
    return (f'training loss is {value} at epoch {epoch}, iteration {iteration} (batch {shape}, lr {lr:.3g}, '
            f'--amp {args.amp}); the weights of this step are not saved. Lower --lr{rule}, set --clip-gradient, or '
            f'train in float32 (--amp none), then resume from the last checkpoint')


def train_one_epoch(model: nn.Module, loader, optimizer, scaler, epoch: int, start_iter: int,
                    args: argparse.Namespace, device: torch.device, log: RunLog, save_fn,
                    sizes: Optional[List[int]] = None) -> Dict[str, float]:
    """One pass over ``loader`` (which already skips the first ``start_iter`` batches on resume); ``sizes``:
    batch i is resized to ``sizes[i % len(sizes)]`` (multigrid's short cycle, ``ops.multigrid.resize_frames``).

    Logs each step's time and its wait for data as TSM (``Time``, ``Data``), and the epoch's seconds of each
    as the scalars ``time/data_s`` and ``time/compute_s``."""
    model.train()
    if args.freeze_early_bn:
        freeze_early_batchnorm(getattr(model, 'module', model))
    losses, top1, top5 = AverageMeter(), AverageMeter(), AverageMeter()
    skipped, held_back = 0, 0
    # Under DDP every rank must take every step (backward all-reduces, SyncBN gathers): with --on_bad_video
    # skip a rank whose whole batch was bad would leave the others waiting, so the ranks agree on each step.
    agree = dist_utils.is_distributed() and args.on_bad_video == 'skip'
    timer = StepTimer()
    bar = tqdm(timer.batches(loader), desc=f'epoch {epoch}', initial=start_iter, total=start_iter + len(loader),
               disable=not log.file, dynamic_ncols=True)
    steps = start_iter + len(loader)
    for i, batch in enumerate(bar, start=start_iter):
        if epoch < args.warmup_epochs:  # the warm-up raises the rate every step (a function of epoch and i)
            adjust_learning_rate(optimizer, args, epoch + (i + 1) / steps)
        skipped += int(batch[3])
        empty = batch[1].numel() == 0  # every video of the batch was skipped (--on_bad_video skip)
        if agree:
            empty = dist_utils.any_rank(empty, device)
            held_back += batch[1].numel() if empty else 0
        if empty:
            continue
        frames, labels, lengths = to_device(batch, device)
        if sizes:
            frames = mg.resize_frames(frames, sizes[i % len(sizes)])
        sub = mg.bn_sub_batches(labels.shape[0], args.batch_size) if args.multigrid_bn == 'sub' else 1
        with mg.sub_batch_norm(model, sub):  # --multigrid_bn sub: the base batch's clips per BatchNorm
            output, loss = train_step(model, optimizer, scaler, frames, labels, lengths, args.amp, args.clip_gradient)
        c1, c5 = correct_topk(output, labels, (1, 5))
        n = labels.shape[0]
        value = loss.item()  # waits for the device: the step's kernels are done when the step closes
        if not math.isfinite(value):  # the step has already spoilt the weights: stop before anything saves them
            raise FloatingPointError(nonfinite_loss_message(value, epoch, i, optimizer, frames, args))
        losses.update(value, n)
        top1.update(c1.item() * 100.0 / n, n)
        top5.update(c5.item() * 100.0 / n, n)
        timer.step_done()
        bar.set_postfix(loss=f'{losses.avg:.4f}', top1=f'{top1.avg:.2f}')
        if i % args.print_freq == 0:
            log.line(f'Epoch: [{epoch}][{i}/{start_iter + len(loader)}], lr: {optimizer.param_groups[-1]["lr"]:.5f}\t'
                     f'Time {timer.batch.val:.3f} ({timer.batch.avg:.3f})\t'
                     f'Data {timer.data.val:.3f} ({timer.data.avg:.3f})\t'
                     f'Loss {losses.val:.4f} ({losses.avg:.4f})\tPrec@1 {top1.val:.3f} ({top1.avg:.3f})\t'
                     f'Prec@5 {top5.val:.3f} ({top5.avg:.3f})')
        if args.save_freq and (i + 1) % args.save_freq == 0 and i + 1 < start_iter + len(loader):
            save_fn(epoch, i + 1)
    times = timer.totals()
    log.scalars({'time/data_s': times['data_s'], 'time/compute_s': times['compute_s']}, epoch)
    if agree:  # every rank's counts, logged by rank 0
        skipped, held_back = (int(v) for v in dist_utils.all_reduce_sum(
            torch.tensor([skipped, held_back], device=device)).tolist())
    if skipped:
        log.line(f'Epoch {epoch}: {skipped} bad videos skipped (--on_bad_video skip)')
    if held_back:
        log.line(f'Epoch {epoch}: {held_back} good videos left out with the steps in which another rank '
                 f'had no valid video')
    return {'loss': losses.avg, 'top1': top1.avg, 'top5': top5.avg}


@torch.no_grad()
def validate(model: nn.Module, loader, args: argparse.Namespace, device: torch.device,
             show: bool = True) -> Dict[str, float]:
    """Top-1/top-5 (percent) and mean loss over the whole validation set, summed exactly across ranks."""
    criterion = nn.CrossEntropyLoss(reduction='sum')
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top1 hits, top5 hits, count
    for batch in tqdm(loader, desc='validate', disable=not show, dynamic_ncols=True):
        if batch[1].numel() == 0:
            continue
        frames, labels, lengths = to_device(batch, device)
        with autocast(args.amp, device):
            output = model(frames, lengths).float()
        c1, c5 = correct_topk(output, labels, (1, 5))
        totals += torch.stack([criterion(output, labels).double(), c1.double(), c5.double(),
                               torch.tensor(float(labels.shape[0]), dtype=torch.float64, device=device)])
    totals = dist_utils.all_reduce_sum(totals)
    loss_sum, hits1, hits5, count = totals.tolist()
    count = max(count, 1.0)
    return {'top1': 100.0 * hits1 / count, 'top5': 100.0 * hits5 / count, 'loss': loss_sum / count,
            'count': int(count)}


def check_mid_epoch(ckpt: dict, args: argparse.Namespace, epoch: int, iteration: int, world: int) -> None:
    """A mid-epoch checkpoint resumes by skipping ``iteration`` batches: only exact with its -b and process count."""
    saved_b = (ckpt.get('args') or {}).get('batch_size', args.batch_size)
    saved_world = len(ckpt.get('rng_ranks') or [None])
    if iteration and (saved_b != args.batch_size or saved_world != world):
        raise ValueError(f"{args.resume} was written after {iteration} batches of epoch {epoch} with -b {saved_b} on "
                         f"{saved_world} process(es); this run has -b {args.batch_size} on {world}: the videos "
                         f"already trained cannot be skipped exactly. Resume with the same -b and number of "
                         f"processes, or from an epoch-end checkpoint")
    if epoch >= args.epochs and int(os.environ.get('RANK', 0)) == 0:
        print(f"note: {args.resume} is at epoch {epoch} and --epochs is {args.epochs}: nothing left to train")


# Where the last complete checkpoint of this process is (for the line printed at Ctrl-C).
LAST_SAVED: Dict[str, str] = {}


@dataclass
class Run:
    """What setup builds for one process: flags, process group place, data set, model and optimizer."""
    args: argparse.Namespace
    rank: int
    world: int
    device: torch.device
    config: DatasetConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    log_dir: str
    model_dir: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def auto_resume(args: argparse.Namespace, is_main: bool) -> str:
    """``--resume auto``: this run's latest checkpoint, or '' for a fresh start (what elastic restarts need)."""
    auto = os.path.join(args.root_model, args.store_name, 'ckpt.pth.tar')
    found = dist_utils.resolve_auto_resume(auto)
    if args.evaluate and not found:
        raise FileNotFoundError(f"{auto}: --evaluate --resume auto: no checkpoint to evaluate")
    if is_main:
        print(f"=> --resume auto: {'resuming from' if found else 'starting afresh, no'} {auto}")
    return found


def initial_model(args: argparse.Namespace, num_class: int, is_main: bool,
                  tune: Optional[Dict[str, Any]] = None) -> nn.Module:
    """The model before ``--resume``: ImageNet or fresh weights, or ``--tune_from``'s (whose stored data set
    decides ``--fc_lr5 auto``; ``tune``: that checkpoint where the caller has read it already)."""
    if tune is None and args.tune_from:
        tune = load_checkpoint(args.tune_from)
    # Weights that come from --resume make the ImageNet initialisation moot (and offline, unavailable).
    model = build_model(args, num_class, print_spec=is_main, pretrain='scratch' if args.resume else None,
                        fc_lr5=use_fc_lr5(args, tune and tune.get('args')))
    if tune is not None:
        how = load_tune_from(model, tune['state_dict'], args.tune_from)
        if is_main:
            print(f"=> fine-tuning from {args.tune_from}" + ('' if how == 'by name' else f" ({how})"))
    if args.pretrain == 'scratch' and not args.no_partialbn and is_main:
        print("warning: partial BN freezes every BatchNorm but the first at its initial statistics; "
              "from scratch you probably want --npb")
    return model


def setup(argv: Optional[List[str]]) -> Run:
    """Flags (completed from ``--resume``'s stored settings), process group, seed, data set and the model with
    its optimizer (weights from ``--tune_from``; ``--resume`` loads later)."""
    args = parse_args(argv)
    if args.resume and os.path.isfile(args.resume):  # a missing file is reported where it is loaded
        use_stored_settings(args, list(sys.argv[1:] if argv is None else argv))
    # --tune_from is read once: its stored alpha may set the network's, then its weights start it
    tune = load_checkpoint(args.tune_from) if args.tune_from and os.path.isfile(args.tune_from) else None
    if tune is not None:
        use_tune_from_alpha(args, list(sys.argv[1:] if argv is None else argv), tune.get('args') or {})
    check_training(args)
    rank, world = dist_utils.init_from_env(args.device)
    device = select_device(args.device)
    set_seed(args.seed + rank)
    config = dataset_config(args)
    args.store_name = store_name(args)
    is_main = rank == 0
    if world > 1:  # every node must read the same lists (a shared or identical data folder)
        dist_utils.check_same_on_every_rank(f'{config.train_list} / {config.val_list}',
                                            dist_utils.files_digest(config.train_list, config.val_list))
    if args.resume == 'auto':
        args.resume = auto_resume(args, is_main)
    log_dir = os.path.join(args.root_log, args.store_name)
    model_dir = os.path.join(args.root_model, args.store_name)
    if is_main and not args.evaluate:  # an unwritable folder is found now, not at the first save
        check_writable(log_dir, '--root_log')
        check_writable(model_dir, '--root_model')
    model = initial_model(args, config.num_class, is_main, tune)
    if getattr(args, 'multigrid', None) and args.cluster != 'none' and multigrid_frames(args):
        # the clustered layers see G steps whatever F: the long cycle's batches follow the measured cost (counted
        # on a meta-device copy of the model while it is still on the host)
        args.multigrid_frame_share = mg.frame_share(model, multigrid_frames(args), args.img_size, model.sample_len,
                                                    torch.device('cpu'))
    model.to(device)
    optimizer = build_optimizer(args, model)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == 'fp16')
    return Run(args, rank, world, device, config, model, optimizer, scaler, log_dir, model_dir)


def resume(run: Run) -> Tuple[int, int, float]:
    """``--resume``: weights, and for training the optimizer, scaler and random states; returns the epoch and
    iteration to start from and the best top-1 so far."""
    args, rank, world = run.args, run.rank, run.world
    start_epoch, start_iter, best_prec1 = args.start_epoch, 0, 0.0
    if not args.resume:
        return start_epoch, start_iter, best_prec1
    ckpt = load_checkpoint(args.resume, map_location='cpu')
    load_model_weights(run.model, ckpt['state_dict'], args.resume)
    if not args.evaluate:
        if 'optimizer' in ckpt:
            run.optimizer.load_state_dict(ckpt['optimizer'])
        if ckpt.get('scaler'):
            run.scaler.load_state_dict(ckpt['scaler'])
        start_epoch, start_iter = int(ckpt.get('epoch', 0)), int(ckpt.get('iteration', 0))
        check_mid_epoch(ckpt, args, start_epoch, start_iter, world)
        best_prec1 = float(ckpt.get('best_prec1', 0.0))
        per_rank = ckpt.get('rng_ranks') or [ckpt.get('rng')]
        if len(per_rank) == world:  # every rank continues its own random streams: an exact resume
            set_rng_state(per_rank[rank])
        else:  # saved with another number of processes: rank 0's states, the others' streams kept apart
            set_rng_state(ckpt.get('rng'))
            if rank > 0:
                set_seed(args.seed + rank + 1000003 * (start_epoch * 100003 + start_iter), deterministic=False)
            if run.is_main:
                print(f"note: {args.resume} holds the random states of {len(per_rank)} process(es), this run "
                      f"has {world}: the resumed run is not the uninterrupted one exactly")
    if run.is_main:
        print(f"=> loaded {args.resume} (epoch {ckpt.get('epoch')}, iteration {ckpt.get('iteration', 0)})")
    return start_epoch, start_iter, best_prec1


def save(run: Run, epoch: int, iteration: int, best_prec1: float, is_best: bool = False) -> None:
    """Every rank's random states (a collective: every rank calls it); rank 0 writes ``ckpt.pth.tar`` (and
    ``ckpt.best.pth.tar`` when ``is_best``)."""
    rngs = [rng_state()]
    if run.world > 1:
        rngs = [None] * run.world
        torch.distributed.all_gather_object(rngs, rng_state())
    if not run.is_main:
        return
    args, config = run.args, run.config
    state = {'epoch': epoch, 'iteration': iteration, 'arch': args.arch, 'state_dict': run.model.state_dict(),
             'optimizer': run.optimizer.state_dict(), 'best_prec1': best_prec1, 'args': vars(args),
             'scaler': run.scaler.state_dict() if run.scaler.is_enabled() else None, 'rng': rngs[0],
             'rng_ranks': rngs if run.world > 1 else None,
             # the data set's class file, in label order, for tools/demo.py (None without a class file)
             'class_names': [str(c) for c in config.classes] if config.classes else None}
    path = os.path.join(run.model_dir, 'ckpt.pth.tar')
    save_checkpoint(state, path)
    LAST_SAVED['path'] = path
    LAST_SAVED['at'] = f'epoch {epoch}, iteration {iteration}'
    if is_best:
        link_checkpoint(path, os.path.join(run.model_dir, 'ckpt.best.pth.tar'))


def fit(run: Run, net: nn.Module, val_loader, start_epoch: int, start_iter: int, best_prec1: float,
        argv: Optional[List[str]]) -> Dict[str, float]:
    """Train from ``start_epoch`` (batch ``start_iter``) to ``--epochs``, validating every ``--eval-freq``
    epochs and checkpointing at each epoch's end; returns the last validation and the best top-1."""
    args, model, rank, device = run.args, run.model, run.rank, run.device
    if run.is_main:
        for name in remove_stale_temporaries(run.model_dir):
            print(f"=> removed {os.path.join(run.model_dir, name)}, left by a save that was killed")
        with open(os.path.join(run.log_dir, 'args.txt'), 'w') as f:
            f.write(json.dumps(vars(args), indent=1, default=str) + '\n')
    log = RunLog(run.log_dir if run.is_main else None)
    log.line(' '.join(sys.argv if argv is None else ['main.py'] + list(argv)))
    log.line(describe_machine(device))
    train_set = build_dataset(args, run.config, model, train=True)
    train_sampler = dist_utils.EpochSampler(len(train_set), True, args.seed, rank, run.world, pad=True)
    phases, phase = multigrid_phases(args), None  # --multigrid: ops/multigrid.py's phases of (batch, frames, size)
    if phases:
        share = getattr(args, 'multigrid_frame_share', None)
        log.line('multigrid schedule (Wu et al. 2020)' + ('' if share is None else
                 f', {100 * share:.0f}% of a clip\'s cost grows with its frames (the rest is after clustering)')
                 + ':\n' + mg.describe(phases, args.batch_size, getattr(args, 'multigrid_lr', 'linear')))
        mg.check_shapes(model, phases, model.sample_len, device)
    result = {}
    for epoch in range(start_epoch, args.epochs):
        lr = adjust_learning_rate(run.optimizer, args, epoch)
        shape_args, batches, sizes = args, None, None
        if phases:
            now = mg.phase_at(phases, epoch)
            shape_args, batches, sizes = multigrid_args(args, now), mg.iteration_batches(now, args.batch_size), \
                mg.iteration_sizes(now)
            if now != phase:  # a new long-cycle phase: the data at its frames and size
                phase, train_set = now, build_dataset(shape_args, run.config, model, train=True)
        skip = mg.videos_before(start_iter, batches) if batches else start_iter * args.batch_size
        train_sampler.set_epoch(epoch, skip=skip)
        # augmentation draws are functions of (seed, epoch, video) alone, the loader's worker seeds of (seed, rank,
        # epoch): a run resumed mid-epoch sees the batches and dropout stream of the uninterrupted run
        # (docs/DESIGN.md §6)
        train_set.set_sample_seed((args.seed, epoch))
        loader = make_loader(train_set, shape_args, train_sampler, model.sample_len,
                             (args.seed + rank) * 100003 + epoch,
                             batch_sampler=mg.CycleBatchSampler(train_sampler, batches, start_iter) if batches else None)
        t0 = time.time()
        with model.sampled_frames(shape_args.num_segments):
            stats = train_one_epoch(net, loader, run.optimizer, run.scaler, epoch, start_iter, args, device, log,
                                    lambda e, it: save(run, e, it, best_prec1), sizes=sizes)
        start_iter = 0
        log.scalars({'loss/train': stats['loss'], 'acc/train_top1': stats['top1'],
                     'acc/train_top5': stats['top5'], 'lr': lr, 'time/epoch_s': time.time() - t0}, epoch)
        is_best = False
        if (epoch + 1) % args.eval_freq == 0 or epoch == args.epochs - 1:
            dist_utils.broadcast_buffers(model)
            result = validate(model, val_loader, args, device, show=run.is_main)
            is_best = result['top1'] > best_prec1 or best_prec1 == 0.0
            best_prec1 = max(result['top1'], best_prec1)
            log.line(f"Testing Results: Prec@1 {result['top1']:.3f} Prec@5 {result['top5']:.3f} "
                     f"Loss {result['loss']:.5f}")
            log.line(f'Best Prec@1: {best_prec1:.3f}')
            log.scalars({'loss/test': result['loss'], 'acc/test_top1': result['top1'],
                         'acc/test_top5': result['top5'], 'acc/test_top1_best': best_prec1}, epoch)
        save(run, epoch + 1, 0, best_prec1, is_best)
    log.close()
    result['best_prec1'] = best_prec1
    return result


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    """Set up, resume, then evaluate (``--evaluate``) or fit; the last validation's figures."""
    run = setup(argv)
    args = run.args
    start_epoch, start_iter, best_prec1 = resume(run)
    model = run.model
    net = dist_utils.wrap_model(model, run.device, sync_bn=args.sync_bn) if dist_utils.is_distributed() else model
    if args.sync_bn and run.world == 1 and run.is_main:
        print("note: --sync_bn only acts under torchrun with several processes")
    val_set = build_dataset(args, run.config, model, train=False)
    val_loader = make_loader(val_set, args, dist_utils.EpochSampler(len(val_set), False, args.seed, run.rank,
                                                                    run.world, pad=False), model.sample_len, args.seed)
    # Validation runs the bare model: DDP's forward may start a collective, and ranks can hold different
    # numbers of validation batches. Rank 0's BatchNorm statistics are copied first (broadcast_buffers).
    if args.evaluate:
        result = validate(model, val_loader, args, run.device, show=run.is_main)
        if run.is_main:
            print(f"Testing Results: Prec@1 {result['top1']:.3f} Prec@5 {result['top5']:.3f} "
                  f"Loss {result['loss']:.5f} ({result['count']} videos)")
    else:
        result = fit(run, net, val_loader, start_epoch, start_iter, best_prec1, argv)
    dist_utils.cleanup()
    return result


def culprit_line(err: BaseException) -> str:
    """One line naming what failed: ``Type: first line of the message``. An error raised in a loader worker
    reaches the main process with the worker's whole traceback as its text; its last line is the original
    error (``ops.video_list.BadVideoError: frame not found: ...``), while the plain traceback would end blank."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if 'Traceback (most recent call last)' in str(err):
        return lines[-1]
    return f'{type(err).__name__}: {lines[0]}' if lines else type(err).__name__


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; 130 = 128 + SIGINT, as a shell reports it
        rank = f" (rank {os.environ['RANK']})" if 'RANK' in os.environ else ''
        where = (f"the last complete checkpoint is {LAST_SAVED['path']} ({LAST_SAVED['at']}); resume with "
                 f"--resume {LAST_SAVED['path']}") if LAST_SAVED else "no checkpoint was written by this run"
        print(f"\ninterrupted{rank}: {where}", file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception as error:  # the full traceback, then one last line naming the bad file, list line or frame
        import traceback
        traceback.print_exc()
        rank = f" (rank {os.environ['RANK']})" if 'RANK' in os.environ else ''
        print(f'error{rank}: {culprit_line(error)}', file=sys.stderr, flush=True)
        sys.exit(1)
