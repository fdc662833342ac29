"""From flags to things, the one way: main.py and every tool go through here (docs/DESIGN.md §1).

Parsed flags (``opts.parse_args``), or a checkpoint's stored flags plus overrides (``checkpoint_args``,
``apply_stored``), become the data-set configuration, the model, the transforms and datasets for training,
validation and testing (crops x clips), and the optimizer with its learning-rate schedule. The library
(``ops/``) takes plain arguments and never sees the namespace.
"""
import argparse
import copy
import functools
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torchvision

import opts
from ops import multigrid as mg
from ops import transforms as T
from ops.checkpoint import CheckpointError, load_checkpoint, load_model_weights
from ops.dataset import collate_videos
from ops.dataset_config import ALIASES, DatasetConfig, return_dataset
from ops.models import TSN
from ops.temporal_shift import set_online
from ops.transforms import default_scale_size

# Data flags: a checkpoint evaluated on another data set takes that set's defaults, not the run's paths.
DATA_KEYS = ('root_path', 'image_tmpl', 'start_index', 'video_source')


# ------------------------------------------------------------------------------------------ flags
def apply_stored(args: argparse.Namespace, saved: Dict[str, Any], given: Dict[str, Any], path: str,
                 keys: Iterable[str] = opts.MODEL_KEYS, override: bool = False) -> List[str]:
    """In place: ``args`` take the settings of ``keys`` that checkpoint ``path`` stored (``saved``), then the
    defaults that depend on them are completed again (``opts.complete_args``).

    A flag in ``given`` (``opts.explicit_flags``) that contradicts its stored value raises ``ValueError``
    unless ``override`` (then it wins). Returns the changed settings as ``['--k v', ...]``.
    """
    settings = opts.stored_settings(saved, given, path, keys, override=override)
    changed = [f"--{k} {v}" for k, v in settings.items() if getattr(args, k, None) != v]
    for key, value in settings.items():
        setattr(args, key, value)
    if args.cluster == 'none' and 'frames' not in given:
        args.frames = None
    if args.cluster != 'none' and 'sample_rate' not in given:  # a clip network clustering takes every frame
        args.sample_rate = None
    if 'img_size' in given and 'scale_size' not in given and args.img_size != saved.get('img_size'):
        args.scale_size = None
    if 'img_size' not in given and 'img_size' not in saved:  # e.g. a converted pytorchvideo file: the stored
        args.img_size = None                                  # arch's own training crop, not the command line's
        args.scale_size = None if 'scale_size' not in given and 'scale_size' not in saved else args.scale_size
    opts.complete_args(args, opts.build_parser())
    return changed


def use_stored_settings(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """``--resume CKPT`` (evaluation or training): take the model settings CKPT was trained with (``opts.MODEL_KEYS``).

    A flag given in ``argv`` that contradicts them is an error, unless ``--override_model_args``.
    A checkpoint without ``args`` (TSM's own) is used with the command line's settings.
    """
    saved = load_checkpoint(args.resume).get('args')
    if not saved:
        return
    changed = apply_stored(args, saved, opts.explicit_flags(list(argv)), args.resume,
                           override=args.override_model_args)
    if changed and int(os.environ.get('RANK', 0)) == 0:
        print(f"=> {args.resume}: its stored model settings {' '.join(changed)} replace the defaults")


def use_tune_from_alpha(args: argparse.Namespace, argv: Sequence[str],
                        saved: Optional[Dict[str, Any]] = None) -> None:
    """``--tune_from`` a SlowFast file (e.g. tools/convert_checkpoint.py's SLOWFAST_4x16_R50): its stored
    ``slowfast_alpha`` fixes the lateral fusion's kernel, so it is taken when the command line gives none, and a
    different ``--slowfast_alpha`` is an error naming the file (the weights could not load). ``saved``: the
    file's stored ``args`` where the caller has read it already (None: read here)."""
    from archs import backbone_option_defaults
    default = backbone_option_defaults(args.arch).get('alpha')
    if default is None:
        return
    if saved is None:
        saved = load_checkpoint(args.tune_from).get('args') or {}
    alpha = saved.get('slowfast_alpha')
    if not alpha or saved.get('arch') != args.arch or (args.slowfast_alpha or default) == alpha:
        return  # the same network (an unset flag is the builder's default alpha: the run's name stays)
    if 'slowfast_alpha' in opts.explicit_flags(list(argv)):
        raise ValueError(f"{args.tune_from}: its SlowFast was trained with --slowfast_alpha {alpha}, this run asks "
                         f"for {args.slowfast_alpha}: the lateral fusion's weights differ in shape; drop the flag "
                         f"or pass --slowfast_alpha {alpha}")
    args.slowfast_alpha = alpha
    opts.complete_args(args, opts.build_parser())  # the checks that depend on alpha (multigrid, linspace frames)
    if int(os.environ.get('RANK', 0)) == 0:
        print(f"=> {args.tune_from}: --slowfast_alpha {alpha}, as its SlowFast was trained")


def checkpoint_args(saved: Optional[Dict[str, Any]], path: str, dataset: Optional[str] = None,
                    modality: Optional[str] = None, extra: Sequence[str] = (),
                    data: Optional[Dict[str, Any]] = None) -> argparse.Namespace:
    """main.py's namespace for evaluating checkpoint ``path``: its stored ``args``, else (a TSM checkpoint)
    the model flags in ``extra``; ``pretrain`` is ``scratch`` (the checkpoint holds every weight).

    ``dataset`` (default: the stored one) other than the stored one drops the run's data paths; ``data``
    (``DATA_KEYS`` and ``val_list``: None means unset) says where the data lives now. Flags in ``extra``
    must agree with the stored ones (``ValueError`` naming them).
    """
    dataset = dataset or (saved or {}).get('dataset')
    if dataset is None:
        raise ValueError(f"{path} holds no 'args' (a TSM checkpoint?): give DATASET and main.py's model "
                         f"flags (--arch, --shift, --num_segments, ...) on the command line")
    modality = (saved or {}).get('modality') or modality or 'RGB'
    argv = [dataset, modality, *extra]
    args = opts.parse_args(argv)
    if saved:
        given = {k: v for k, v in opts.explicit_flags(argv).items() if k not in ('dataset', 'modality')}
        apply_stored(args, saved, given, path, keys=[k for k in saved if k != 'dataset'])
        if saved.get('dataset') != dataset:
            for key in DATA_KEYS + ('train_list', 'val_list'):
                setattr(args, key, None)
        args.dataset = dataset
    args.pretrain = 'scratch'
    args.channels_last = False  # the training machine's memory layout, not part of the model
    for key, value in (data or {}).items():
        if value is not None:
            setattr(args, key, value)
    return args


def eval_sizes(args: argparse.Namespace, frames: Any = None, img_size: Optional[int] = None,
               scale_size: Optional[int] = None) -> argparse.Namespace:
    """In place: test-time F, crop size and short side (None keeps the stored value; a new crop size without
    a short side takes the default short side)."""
    for key, value in (('frames', frames), ('img_size', img_size), ('scale_size', scale_size)):
        if value is not None:
            setattr(args, key, value)
    if img_size is not None and scale_size is None:
        args.scale_size = default_scale_size(args.img_size)
    return args


def dataset_config(args: argparse.Namespace, modality: Optional[str] = None) -> DatasetConfig:
    """The data set of ``args`` with its path, list and frame overrides (``modality`` replaces the flag's)."""
    return return_dataset(args.dataset, modality or args.modality, root_path=args.root_path,
                          train_list=args.train_list, val_list=args.val_list, image_tmpl=args.image_tmpl,
                          start_index=args.start_index, video_source=args.video_source)


def store_name(args: argparse.Namespace) -> str:
    """TSM's run name (``TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50``) plus the clustering."""
    if args.store_name:
        return args.store_name
    parts = ['TSM', args.dataset, args.modality, args.arch]
    if getattr(args, 'slowfast_alpha', None):
        parts.append(f'alpha{args.slowfast_alpha}')
    if args.shift:
        parts += [f'shift{args.shift_div}', args.shift_place]
    if args.temporal_pool:
        parts.append('tpool')
    parts.append(args.consensus_type)
    if args.cluster != 'none':
        parts.append(f'{args.cluster}{args.num_segments}_frames{args.frames}')
        if args.cluster_after != 1:
            parts.append(f'afterstage{args.cluster_after}')
    else:
        parts.append(f'segment{args.num_segments}')
    parts.append(f'e{args.epochs}')
    name = '_'.join(parts)
    if args.pretrain != 'imagenet':
        name += f'_{args.pretrain}'
    if args.lr_type != 'step':
        name += f'_{args.lr_type}'
    if args.dense_sample:
        name += '_dense'
    if (getattr(args, 'sample_rate', None) or 1) > 1:  # a clip backbone's stride
        name += f'_rate{args.sample_rate}'
    if args.modality == 'RGB' and (getattr(args, 'new_length', None) or 1) > 1:  # early fusion
        name += f'_len{args.new_length}'
    if getattr(args, 'online', False):
        name += '_online'
    if getattr(args, 'multigrid', None):
        name += '_mg' + args.multigrid.replace(',', '')
    if args.suffix is not None:
        name += f'_{args.suffix}'
    return name


# ------------------------------------------------------------------------------------------ model
def use_fc_lr5(args: argparse.Namespace, tune_args: Optional[Dict[str, Any]] = None) -> bool:
    """``--fc_lr5``: ``on``/``off`` as given; ``auto`` is on when the weights come from another task (ImageNet,
    or a ``--tune_from`` checkpoint whose stored data set differs, or which stores none, as TSM's own), off
    from scratch or when tuning from the same data set. ``tune_args``: the tune_from checkpoint's ``args``."""
    if args.fc_lr5 != 'auto':
        return args.fc_lr5 == 'on'
    if args.tune_from:
        stored = (tune_args or {}).get('dataset')
        return stored is None or ALIASES.get(stored, stored) != ALIASES.get(args.dataset, args.dataset)
    return args.pretrain != 'scratch'  # ImageNet or Kinetics-400 weights


def backbone_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The backbone builder's options set by flags: ``--slowfast_alpha`` -> ``{'alpha': a}``,
    ``--slowfast_slow_frames`` -> ``{'slow_frames': s}`` (docs/DESIGN.md §7),
    plus ``args.backbone_options`` where a tool sets that dict (``tools/x3d_expand.py``: ``x2d``'s expansions)."""
    alpha, slow = getattr(args, 'slowfast_alpha', None), getattr(args, 'slowfast_slow_frames', None)
    return {**({} if alpha is None else {'alpha': alpha}), **({} if slow is None else {'slow_frames': slow}),
            **(getattr(args, 'backbone_options', None) or {})}


def build_model(args: argparse.Namespace, num_class: int, print_spec: bool = True,
                pretrain: Optional[str] = None, fc_lr5: bool = False) -> TSN:
    """The TSN that a training command with these arguments trains (``--channels_last``: weights converted).

    ``pretrain`` overrides ``args.pretrain``: callers that load all weights from a checkpoint pass
    ``'scratch'`` so that no ImageNet download is attempted. ``fc_lr5``: ``use_fc_lr5``'s answer.
    """
    model = TSN(num_class, args.num_segments, args.modality, base_model=args.arch,
                new_length=getattr(args, 'new_length', None),
                consensus_type=args.consensus_type, dropout=args.dropout,
                partial_bn=not args.no_partialbn, pretrain=pretrain or args.pretrain, is_shift=args.shift,
                shift_div=args.shift_div, shift_place=args.shift_place, temporal_pool=args.temporal_pool,
                non_local=args.non_local, cluster=args.cluster, num_frames=args.frames,
                cluster_after=args.cluster_after, chunk_frames=args.chunk_frames, fc_lr5=fc_lr5,
                fused_assign={'on': True, 'off': False}.get(getattr(args, 'fused_assign', 'auto')),
                zero_init_residual=getattr(args, 'zero_init_residual', False),
                channels_last=getattr(args, 'channels_last', False), print_spec=print_spec,
                backbone_options=backbone_options(args))
    if getattr(args, 'online', False):  # --online: uni-directional shifts (checkpoints from before have no flag)
        set_online(model.modules())
    if getattr(args, 'channels_last', False):  # 3D convolutions' weights are 5-D: their channels-last is _3d
        model.to(memory_format=torch.channels_last_3d if model.layout.clip else torch.channels_last)
    return model


def load_tune_from(model: TSN, state_dict: Dict[str, torch.Tensor], path: str) -> str:
    """``--tune_from``'s weights into ``model``; returns how they were taken (for the log).

    By name (``ops.checkpoint.load_model_weights``; a classifier of another class count stays new), except a 2D
    ResNet-50 (ours, TSM's or torchvision's: its ``conv1.weight`` is 4-D) for ``--arch i3d_resnet50``, which is
    inflated to 3D (``archs.i3d.inflate_resnet50``: BatchNorm as is, the classifier stays new).
    """
    if model.arch == 'i3d_resnet50':
        from archs.i3d import inflate_resnet50, map_resnet50_keys
        backbone = map_resnet50_keys(state_dict)
        if 'conv1.weight' in backbone and backbone['conv1.weight'].dim() == 4:
            try:
                inflate_resnet50(model.base_model, backbone)
            except ValueError as err:
                raise CheckpointError(f"{path}: a 2D checkpoint for --arch i3d_resnet50: {err}") from err
            return 'a 2D ResNet-50 inflated to I3D'
    load_model_weights(model, state_dict, path, drop_classifier_if_mismatch=True)
    return 'by name'


# ------------------------------------------------------------------------------- transforms, data
def build_transform(args: argparse.Namespace, model: TSN, train: bool, flip: bool):
    """Group transforms as TSM: multi-scale crop (+ flip) for training, resize + centre crop for validation."""
    if train:
        # a flipped flow stack also inverts its x images (TSN)
        crop = T.train_augmentation(args.img_size, flip=flip, is_flow=args.modality == 'Flow')
    else:
        crop = T.val_transform(args.scale_size, args.img_size)
    return _finish(crop, model)


def views_transform(args: argparse.Namespace, model: TSN, crops: int, full_res: bool):
    """TSM's test crops (1 centre; 3 along the long side; 5 corners + centre; 10 those and their mirrors) on
    frames resized to ``scale_size`` (short side); ``full_res`` crops squares of ``scale_size``."""
    size = args.scale_size if full_res else args.img_size
    cropping = {1: T.val_transform(args.scale_size, size),
                3: T.GroupFullResSample(size, args.scale_size, flip=False),
                5: T.GroupOverSample(size, args.scale_size, flip=False),
                10: T.GroupOverSample(size, args.scale_size)}[crops]
    return _finish(cropping, model)


def _finish(crop, model: TSN):
    """``crop``, then ``to_input``."""
    return torchvision.transforms.Compose([crop, to_input(model)])


def to_input(model: TSN):
    """T cropped PIL frames -> ``(T*C, H, W)``: stacked, scaled to [0, 1], normalised with the model's mean and
    std (the end of every transform here)."""
    return torchvision.transforms.Compose([T.Stack(roll=False), T.ToTorchFormatTensor(div=True),
                                           T.GroupNormalize(model.input_mean, model.input_std)])


def build_dataset(args: argparse.Namespace, config: DatasetConfig, model: TSN, train: bool, transform=None):
    """The training or validation ``VideoDataset`` of a run (frames per video as the flags say)."""
    from ops.dataset import VideoDataset
    from ops.transforms import train_decode_size
    resize_short = None  # frames resized at load only for our validation transform, which starts with it
    if transform is None:
        transform = build_transform(args, model, train, flip=not config.direction_sensitive)
        resize_short = None if train else args.scale_size
    return VideoDataset(
        config.root_path, config.train_list if train else config.val_list,
        num_segments=args.num_segments, new_length=model.new_length, modality=args.modality,
        image_tmpl=config.image_tmpl, start_index=config.start_index, transform=transform,
        random_shift=train, test_mode=False, dense_sample=args.dense_sample,
        twice_sample=args.twice_sample and not train,
        frames=args.frames if args.cluster != 'none' else None, num_class=config.num_class,
        video_source=config.video_source, on_bad_video=args.on_bad_video,
        decode_size=train_decode_size(args.img_size) if train else args.scale_size,
        resize_short=resize_short, sample_rate=getattr(args, 'sample_rate', None))


def build_test_dataset(args: argparse.Namespace, config: DatasetConfig, model: TSN, crops: int = 1,
                       full_res: bool = False, clips: int = 1, twice_sample: bool = False):
    """The test ``VideoDataset``: each sample holds ``clips`` (2 with ``twice_sample``) x ``crops`` views; a clip
    backbone's ``clips`` are clips of T frames at stride ``--sample_rate`` spread evenly over the video
    (``ops.sampling.clip_indices``; one: the centre clip)."""
    from ops.dataset import VideoDataset
    return VideoDataset(
        config.root_path, config.val_list, num_segments=args.num_segments, new_length=model.new_length,
        modality=args.modality, image_tmpl=config.image_tmpl, start_index=config.start_index,
        transform=views_transform(args, model, crops, full_res), random_shift=False, test_mode=True,
        dense_sample=args.dense_sample, twice_sample=twice_sample, num_clips=1 if twice_sample else clips,
        frames=args.frames if args.cluster != 'none' else None, num_class=config.num_class,
        video_source=config.video_source, decode_size=args.scale_size,
        resize_short=args.scale_size,  # every test transform begins with GroupScale(scale_size)
        sample_rate=getattr(args, 'sample_rate', None))


def collate_views(batch: Sequence, views: int, channels: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Samples ``(V*T_i*C, H, W)`` -> ``(N, V, T_max*C, H, W)``, each view padded with its last frame;
    labels and lengths ``(N,)``."""
    clips = [frames.view(views, -1, *frames.shape[-2:]) for frames, _, _ in batch]
    t_max = max(c.shape[1] // channels for c in clips)
    padded = [torch.cat([c, c[:, -channels:].repeat(1, t_max - c.shape[1] // channels, 1, 1)], dim=1)
              if c.shape[1] < t_max * channels else c for c in clips]
    return (torch.stack(padded), torch.tensor([int(b[1]) for b in batch]),
            torch.tensor([int(b[2]) for b in batch]))


def make_loader(dataset, args: argparse.Namespace, sampler, channels: int, seed: int, batch_sampler=None):
    """A loader whose iterator draws its worker seeds from its own generator (seeded with ``seed``), never from
    torch's global one: the dropout stream then does not depend on when a loader was started (exact resume).
    ``batch_sampler`` (multigrid's short cycle) replaces ``sampler`` and ``-b``."""
    by_sampler = dict(batch_size=args.batch_size, sampler=sampler) if batch_sampler is None else \
        dict(batch_sampler=batch_sampler)
    return torch.utils.data.DataLoader(
        dataset, **by_sampler, num_workers=args.workers,
        pin_memory=torch.cuda.is_available() and args.device != 'cpu', drop_last=False,
        collate_fn=functools.partial(collate_videos, channels=channels, return_skipped=True),
        persistent_workers=False, prefetch_factor=4 if args.workers > 0 else None,
        generator=torch.Generator().manual_seed(seed))


def views_loader(dataset, views: int, channels: int, batch_size: int, workers: int, pin_memory: bool):
    """Batches of ``(N, V, T*C, H, W)`` views in list order (``collate_views``)."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=functools.partial(collate_views, views=views, channels=channels), pin_memory=pin_memory)


# ------------------------------------------------------------------------------ optimizer, schedule
def build_optimizer(args: argparse.Namespace, model: TSN) -> torch.optim.Optimizer:
    """SGD with TSM's parameter groups (or AdamW over the same groups); lr and decay set per epoch."""
    groups = model.get_optim_policies()
    if args.optimizer == 'adamw':
        # torch's fused kernel (CPU and CUDA, torch >= 2.4): one pass over each tensor; on the CPU a ResNet-18 step
        # takes 20 ms instead of the per-tensor loop's 93 (torch's default off CUDA)
        try:
            return torch.optim.AdamW(groups, args.lr, weight_decay=args.weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # an older torch, or parameters its kernel does not take
            return torch.optim.AdamW(groups, args.lr, weight_decay=args.weight_decay)
    return torch.optim.SGD(groups, args.lr, momentum=args.momentum, weight_decay=args.weight_decay)


def learning_rate(args: argparse.Namespace, epoch: float) -> float:
    """TSM's schedule: ``step`` divides by 10 at each of ``lr_steps``; ``cos`` anneals to 0 over ``epochs``.

    With ``--warmup_epochs W`` the rate is scaled by ``epoch / W`` while ``epoch < W`` (linear warm-up, Goyal et
    al. 2017); the training loop then passes the fraction of the epoch done, so the rate rises every step.
    """
    if args.lr_type == 'step':
        lr = args.lr * 0.1 ** sum(epoch >= s for s in args.lr_steps)
    else:
        lr = 0.5 * args.lr * (1 + math.cos(math.pi * epoch / args.epochs))
    warmup = getattr(args, 'warmup_epochs', 0)
    return lr * epoch / warmup if epoch < warmup else lr


def adjust_learning_rate(optimizer: torch.optim.Optimizer, args: argparse.Namespace, epoch: float) -> float:
    """Set every group's lr and weight decay from the schedule and the group's multipliers."""
    lr = learning_rate(args, epoch)
    phases = multigrid_phases(args)
    if phases:  # the long cycle's batch multiple, by --multigrid_lr (linear: Wu et al. 2020 Sec. 3.3)
        lr *= mg.lr_factor(mg.phase_at(phases, int(epoch)), getattr(args, 'multigrid_lr', 'linear'))
    for group in optimizer.param_groups:
        group['lr'] = lr * group.get('lr_mult', 1)
        group['weight_decay'] = args.weight_decay * group.get('decay_mult', 1)
    return lr


# ------------------------------------------------------------------------------ multigrid (ops/multigrid.py)
def multigrid_frames(args: argparse.Namespace) -> int:
    """The frames the long cycle varies: F (``--frames``) with clustering, else the sampled T (``--num_segments``);
    0 for ``--frames all`` (only the short cycle, opts.check_multigrid)."""
    frames = args.frames if args.cluster != 'none' else args.num_segments
    return frames if isinstance(frames, int) else 0


def multigrid_phases(args: argparse.Namespace) -> Optional[List[mg.Phase]]:
    """``--multigrid``: the run's phases (``ops.multigrid.schedule``) at base (T or F, ``--img_size``), the
    learning-rate stages starting at ``--lr_steps`` (step schedule); None without ``--multigrid``. With
    clustering, main.py first measures the model's ``multigrid_frame_share`` (``ops.multigrid.frame_share``),
    which sets the long cycle's batch multiples (1, B T S^2 constant, otherwise)."""
    if not getattr(args, 'multigrid', None):
        return None
    cycles = args.multigrid.split(',')
    starts = [math.ceil(s) for s in args.lr_steps] if args.lr_type == 'step' else []
    return mg.schedule(args.epochs, multigrid_frames(args), args.img_size, 'long' in cycles, 'short' in cycles,
                       starts, getattr(args, 'multigrid_frame_share', 1.0))


def multigrid_args(args: argparse.Namespace, phase: mg.Phase) -> argparse.Namespace:
    """A copy of ``args`` for training in ``phase``: its batch (``-b`` times the multiple), crop size and frames
    (``--frames`` F with clustering, G kept; else ``--num_segments`` T, a clip backbone's ``--sample_rate`` scaled
    so the clip spans the same time, as PySlowFast)."""
    out = copy.copy(args)
    out.batch_size = args.batch_size * phase.shape.batch
    out.img_size = phase.shape.size
    base = multigrid_frames(args)
    if phase.shape.frames != base:
        if args.cluster != 'none':
            out.frames = phase.shape.frames
        else:
            out.num_segments = phase.shape.frames
            if getattr(args, 'sample_rate', None):
                out.sample_rate = args.sample_rate * max(1, round(base / phase.shape.frames))
    return out
