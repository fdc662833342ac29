"""What main.py and the tools share: run names, device and seed, the model and learning-rate schedule."""
import argparse
import math
import os
import random
from typing import Optional

import numpy as np
import torch

from ops.models import TSN
from ops.temporal_shift import set_online


def store_name(args: argparse.Namespace) -> str:
    """TSM's run name (``TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50``) plus the clustering."""
    if args.store_name:
        return args.store_name
    parts = ['TSM', args.dataset, args.modality, args.arch]
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
    if getattr(args, 'online', False):
        name += '_online'
    if args.suffix is not None:
        name += f'_{args.suffix}'
    return name


def select_device(choice: str) -> torch.device:
    """``auto``: CUDA when there is one; ``cuda`` without a GPU is an error, not a silent fallback."""
    if choice == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    if choice == 'cpu' or (choice == 'auto' and not torch.cuda.is_available()):
        return torch.device('cpu')
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    torch.cuda.set_device(local_rank)
    return torch.device('cuda', local_rank)


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; deterministic kernels where torch offers them."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def build_model(args: argparse.Namespace, num_class: int, print_spec: bool = True,
                pretrain: Optional[str] = None) -> TSN:
    """The TSN that a training command with these arguments trains.

    ``pretrain`` overrides ``args.pretrain``: callers that load all weights from a checkpoint pass
    ``'scratch'`` so that no ImageNet download is attempted.
    """
    model = TSN(num_class, args.num_segments, args.modality, base_model=args.arch,
                 consensus_type=args.consensus_type, dropout=args.dropout,
                 partial_bn=not args.no_partialbn, pretrain=pretrain or args.pretrain, is_shift=args.shift,
                 shift_div=args.shift_div, shift_place=args.shift_place, temporal_pool=args.temporal_pool,
                 non_local=args.non_local, cluster=args.cluster, num_frames=args.frames,
                 cluster_after=args.cluster_after, chunk_frames=args.chunk_frames,
                 fused_assign={'on': True, 'off': False}.get(getattr(args, 'fused_assign', 'auto')),
                 zero_init_residual=getattr(args, 'zero_init_residual', False), print_spec=print_spec)
    if getattr(args, 'online', False):  # --online: uni-directional shifts (checkpoints from before have no flag)
        set_online(model.modules())
    return model


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
    for group in optimizer.param_groups:
        group['lr'] = lr * group.get('lr_mult', 1)
        group['weight_decay'] = args.weight_decay * group.get('decay_mult', 1)
    return lr


def frames_per_video(args: argparse.Namespace) -> Optional[int]:
    """Frames one video contributes to the input: F when clustering with an integer F, else num_segments."""
    if args.cluster == 'none':
        return args.num_segments * (1 if args.modality == 'RGB' else 5)
    return args.frames if isinstance(args.frames, int) else None


def build_transform(args: argparse.Namespace, model: TSN, train: bool, flip: bool):
    """Group transforms as TSM: multi-scale crop (+ flip) for training, resize + centre crop for validation."""
    import torchvision

    from ops import transforms as T
    if train:
        # a flipped flow stack also inverts its x images (TSN)
        crop = T.train_augmentation(args.img_size, flip=flip, is_flow=args.modality == 'Flow')
    else:
        crop = T.val_transform(args.scale_size, args.img_size)
    return torchvision.transforms.Compose([
        crop, T.Stack(roll=False), T.ToTorchFormatTensor(div=True),
        T.GroupNormalize(model.input_mean, model.input_std)])


def build_dataset(args: argparse.Namespace, config, model: TSN, train: bool, transform=None):
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
        resize_short=resize_short)
