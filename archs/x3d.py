"""X3D (Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition", CVPR 2020).

X3D starts from a tiny 2D network, X2D (Table 1 of the paper: a ResNet whose residual blocks are inverted
bottlenecks with a depthwise 3x3x3 convolution in the middle), and expands it along six axes. The
published models differ only in clip length, input size and depth; all share the widths found by the
search (stem 24, stages 24/48/96/192, bottleneck expansion 2.25, conv5 432, a 2048-d fc in the head).
``expanded_x2d`` (registered as ``x2d``, its factors the backbone options) builds the network from X2D by the
width, bottleneck and depth factors, for the expansion search (``tools/x3d_expand.py``).

The network is ``blocks = [stem, res2, res3, res4, res5, head]`` (an ``nn.ModuleList``), so code that inserts
an operation after a stage, counts FLOPs per stage or freezes BatchNorm walks the list. Module names are
those of pytorchvideo's ``create_x3d``: a state dict of pytorchvideo's published Kinetics-400 checkpoints
(``X3D_XS.pyth`` ... ``X3D_L.pyth``, key ``model_state``) loads with ``load_state_dict(strict=True)``.

Costs per clip (torch's ``FlopCounterMode``, MACs = FLOPs / 2, 400 classes, measured on meta tensors),
ours against pytorchvideo 0.1.5's hub models (whose head applies the classifier before averaging the
pooled positions, hence its slightly higher count):

    X3D-XS   4 frames at 182^2    0.8415 GMACs (pytorchvideo 0.8439)   3,794,274 parameters
    X3D-S   13 frames at 182^2    2.7246 GMACs (2.7270)                3,794,274
    X3D-M   16 frames at 256^2    6.1833 GMACs (6.1857)                3,794,274
    X3D-L   16 frames at 356^2   24.771  GMACs (24.778)                6,153,384
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from archs.base import Layout

# pytorchvideo's X3D and SlowFast normalisation (its hub's Kinetics-400 transforms), on [0, 1] RGB
PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


@dataclass(frozen=True)
class X3DSpec:
    """One published X3D model: its input (Table 3 of the paper) and its depth expansion."""
    frames: int                 # clip length T
    sample_rate: int            # frames skipped between two sampled frames (30 fps video)
    train_size: int             # training crop side; also sets the head's pooling window
    test_size: int              # side of the model zoo's inference crops
    depth_factor: float         # stage depths are ceil(depth_factor * X2D_DEPTHS)


X3D_SPECS = {
    'x3d_xs': X3DSpec(frames=4, sample_rate=12, train_size=160, test_size=182, depth_factor=2.2),
    'x3d_s': X3DSpec(frames=13, sample_rate=6, train_size=160, test_size=182, depth_factor=2.2),
    'x3d_m': X3DSpec(frames=16, sample_rate=5, train_size=224, test_size=256, depth_factor=2.2),
    'x3d_l': X3DSpec(frames=16, sample_rate=5, train_size=312, test_size=356, depth_factor=5.0),
}

X2D_DEPTHS = (1, 2, 5, 3)           # residual blocks in res2..res5 before the depth expansion
X2D_WIDTH = 12                      # X2D's stem width before the width expansion (res2..res5: 12, 24, 48, 96)
STEM_WIDTH = 24                     # X2D's 12 channels times the width expansion 2.0
STAGE_WIDTHS = (24, 48, 96, 192)    # doubled at each stage
BOTTLENECK_EXPANSION = 2.25         # inner width of every block = 2.25 x its output width
SE_RATIO = 1 / 16                   # squeeze-excitation bottleneck, on every other block
HEAD_WIDTH = 2048                   # the fc before the classifier (conv5 -> pool -> 2048 -> classes)


def round_width(width: float, multiplier: float, divisor: int = 8) -> int:
    """``width * multiplier`` rounded to a multiple of ``divisor`` (at least ``divisor``), never below 90%."""
    scaled = width * multiplier
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)


class SqueezeExcitation(nn.Module):
    """Channel gates from the clip's global average (Hu et al. 2018): (N, C, T, H, W) -> same shape."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.block = nn.Sequential(nn.Conv3d(channels, reduced, 1), nn.ReLU(),
                                   nn.Conv3d(reduced, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.block(x.mean(dim=(2, 3, 4), keepdim=True))


class Stem(nn.Module):
    """3x3 spatial convolution (stride 2) then a depthwise 5x1x1 temporal one: (N, 3, T, H, W) -> (N, 24, T, H/2, W/2).

    pytorchvideo names the spatial convolution ``conv.conv_t`` and the temporal one ``conv.conv_xy``; the
    names are kept so that its checkpoints load.
    """

    def __init__(self, out_channels: int = STEM_WIDTH):
        super().__init__()
        self.conv = nn.Module()
        self.conv.conv_t = nn.Conv3d(3, out_channels, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
        self.conv.conv_xy = nn.Conv3d(out_channels, out_channels, (5, 1, 1), padding=(2, 0, 0),
                                      groups=out_channels, bias=False)
        self.norm = _bn(out_channels)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv.conv_xy(self.conv.conv_t(x))))


class ThreeConvs(nn.Module):
    """pytorchvideo's bottleneck run (X3D's and SlowFast's): conv_a, norm_a, act_a; conv_b, norm_b, act_b;
    conv_c, norm_c. Subclasses make the modules."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class Bottleneck(ThreeConvs):
    """1x1x1 expand, depthwise 3x3x3 (spatial stride here), [SE], swish, 1x1x1 project."""

    def __init__(self, in_channels: int, inner: int, out_channels: int, stride: int, use_se: bool):
        super().__init__()
        self.conv_a = nn.Conv3d(in_channels, inner, 1, bias=False)
        self.norm_a = _bn(inner)
        self.act_a = nn.ReLU()
        self.conv_b = nn.Conv3d(inner, inner, 3, stride=(1, stride, stride), padding=1, groups=inner, bias=False)
        se = SqueezeExcitation(inner, round_width(inner, SE_RATIO)) if use_se else nn.Identity()
        self.norm_b = nn.Sequential(_bn(inner), se)
        self.act_b = nn.SiLU()  # swish
        self.conv_c = nn.Conv3d(inner, out_channels, 1, bias=False)
        self.norm_c = _bn(out_channels)



class ResBlock(nn.Module):
    """ReLU(shortcut(x) + bottleneck(x)); the shortcut is a strided 1x1x1 conv where shapes change."""

    def __init__(self, in_channels: int, inner: int, out_channels: int, stride: int, use_se: bool):
        super().__init__()
        # pytorchvideo's quirk, kept for its checkpoints: the shortcut has a BN only where the width changes
        # (not in res2's first block, which only strides)
        self.branch1_conv = self.branch1_norm = None
        if in_channels != out_channels or stride != 1:
            self.branch1_conv = nn.Conv3d(in_channels, out_channels, 1, stride=(1, stride, stride), bias=False)
        if in_channels != out_channels:
            self.branch1_norm = _bn(out_channels)
        self.branch2 = Bottleneck(in_channels, inner, out_channels, stride, use_se)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.branch1_conv is not None:
            shortcut = self.branch1_conv(shortcut)
        if self.branch1_norm is not None:
            shortcut = self.branch1_norm(shortcut)
        return self.activation(shortcut + self.branch2(x))


class ResStage(nn.Module):
    """``depth`` residual blocks; the first halves H and W; SE on blocks 0, 2, 4, ... of the stage."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, bottleneck: float = BOTTLENECK_EXPANSION):
        super().__init__()
        inner = int(out_channels * bottleneck)  # truncated, unlike conv5's rounded width
        self.res_blocks = nn.ModuleList(
            ResBlock(in_channels if i == 0 else out_channels, inner, out_channels,
                     stride=2 if i == 0 else 1, use_se=i % 2 == 0)
            for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


def clipped_avg_pool(x: torch.Tensor, kernel: Optional[Tuple[int, int, int]]) -> torch.Tensor:
    """Average over windows of ``kernel`` (stride 1), each side cut to the input's; None: global average.

    (N, C, T, H, W) -> (N, C, T', H', W'). pytorchvideo's heads pool with a fixed window sized for the
    training clip, so a larger test clip gives several windows that are averaged after the head's
    nonlinearity; reproducing that keeps the published weights' logits. Smaller inputs get one window.
    """
    if kernel is None:
        return x.mean(dim=(2, 3, 4), keepdim=True)
    return F.avg_pool3d(x, tuple(min(k, s) for k, s in zip(kernel, x.shape[2:])), stride=1)


class ProjectedPool(nn.Module):
    """conv5 (1x1x1 to 432, BN, ReLU), pool, 1x1x1 to 2048 and ReLU: (N, 192, T, h, w) -> (N, 2048, T', h', w')."""

    def __init__(self, in_channels: int, inner: int, out_channels: int, kernel: Optional[Tuple[int, int, int]]):
        super().__init__()
        self.pre_conv = nn.Conv3d(in_channels, inner, 1, bias=False)
        self.pre_norm = _bn(inner)
        self.pre_act = nn.ReLU()
        self.post_conv = nn.Conv3d(inner, out_channels, 1, bias=False)
        self.post_act = nn.ReLU()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = clipped_avg_pool(self.pre_act(self.pre_norm(self.pre_conv(x))), self.kernel)
        return self.post_act(self.post_conv(x))


class X3DHead(nn.Module):
    """ProjectedPool, dropout, mean over the remaining positions, linear classifier: -> (N, num_classes) logits.

    ``output_pool`` (no parameters) is the global mean; pytorchvideo applies it after the classifier, which is
    the same as it is affine.
    """

    def __init__(self, in_channels: int, inner: int, num_classes: int, kernel: Optional[Tuple[int, int, int]],
                 dropout: float = 0.5, width: int = HEAD_WIDTH):
        super().__init__()
        self.pool = ProjectedPool(in_channels, inner, width, kernel)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(width, num_classes)
        self.output_pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.flatten(self.output_pool(self.dropout(self.pool(x))), 1))


class X3D(nn.Module):
    """X3D: (N, 3, T, H, W) clips -> (N, num_classes) logits (no softmax). ``blocks`` = [stem, res2..res5, head]."""

    def __init__(self, depths: Tuple[int, ...], num_classes: int = 400,
                 head_pool_kernel: Optional[Tuple[int, int, int]] = None, dropout: float = 0.5,
                 stem_width: int = STEM_WIDTH, stage_widths: Tuple[int, ...] = STAGE_WIDTHS,
                 bottleneck: float = BOTTLENECK_EXPANSION, head_width: int = HEAD_WIDTH):
        super().__init__()
        stages, in_channels = [], stem_width
        for width, depth in zip(stage_widths, depths):
            stages.append(ResStage(in_channels, width, depth, bottleneck))
            in_channels = width
        # conv5 is as wide as the last stage's bottleneck (432 = 2.25 x 192 in the published models)
        head = X3DHead(in_channels, round_width(in_channels, bottleneck), num_classes,
                       head_pool_kernel, dropout, head_width)
        self.blocks = nn.ModuleList([Stem(stem_width), *stages, head])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"archs/x3d.py: X3D takes clips of shape (N, 3, T, H, W), got {tuple(x.shape)}")
        for block in self.blocks:
            x = block(x)
        return x


def build_x3d(name: str, num_classes: int = 400, dropout: float = 0.5, zoo_head_pool: bool = True) -> X3D:
    """X3D-XS/S/M/L by name (``'x3d_xs'`` ... ``'x3d_l'``), randomly initialised.

    ``zoo_head_pool`` pools the head over the window of the training clip (T, train_size/32, train_size/32)
    as pytorchvideo does, so that its weights give its logits at any input size (those of pytorchvideo's network
    built with ``head_activation=None``: the hub's default applies a softmax to each head window, then averages
    the windows' probabilities); False pools globally.
    """
    if name not in X3D_SPECS:
        raise ValueError(f"archs/x3d.py: unknown X3D {name!r}: expected one of {sorted(X3D_SPECS)}")
    spec = X3D_SPECS[name]
    depths = tuple(math.ceil(spec.depth_factor * d) for d in X2D_DEPTHS)
    side = math.ceil(spec.train_size / 32)
    kernel = (spec.frames, side, side) if zoo_head_pool else None
    return X3D(depths, num_classes, kernel, dropout)


def expanded_x2d(width: float = 1.0, bottleneck: float = 1.0, depth: float = 1.0, num_classes: int = 400,
                 dropout: float = 0.5, head_width: int = HEAD_WIDTH) -> X3D:
    """X2D expanded along the network's three axes (paper Sec. 3.1), the head pooling globally.

    ``width`` (gamma_w): stem ``round_width(12, width)``, res2..res5 ``round_width(12 * 2**i, width)``;
    ``bottleneck`` (gamma_b): each block's inner width is ``int(bottleneck * its output width)``;
    ``depth`` (gamma_d): res2..res5 have ``ceil(depth * (1, 2, 5, 3))`` blocks.
    (2.0, 2.25, 2.2) is the network of X3D-XS/S/M (widths 24/48/96/192, depths 3/5/11/7).
    The clip (frames, frame rate, size: the other three axes) is the input's. ``head_width``: the projection
    before the classifier (X3D: 2048; a toy network may want less).
    """
    if min(width, bottleneck, depth) <= 0:
        raise ValueError(f"archs/x3d.py: expansion factors must be positive, got width={width}, "
                         f"bottleneck={bottleneck}, depth={depth}")
    depths = tuple(math.ceil(depth * d) for d in X2D_DEPTHS)
    widths = tuple(round_width(X2D_WIDTH * 2 ** i, width) for i in range(len(X2D_DEPTHS)))
    return X3D(depths, num_classes, None, dropout, stem_width=round_width(X2D_WIDTH, width),
               stage_widths=widths, bottleneck=bottleneck, head_width=head_width)


def zero_residual_branches(model: X3D) -> None:
    """Zero the last BatchNorm of every residual branch, so each block starts as its shortcut."""
    for m in model.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.norm_c.weight)


def no_download(arch: str, pretrain: str) -> None:
    """Refuse ``--pretrain`` other than 'scratch' for pytorchvideo's networks, saying how to load its weights."""
    if pretrain in ('imagenet', 'kinetics400'):
        raise ValueError(
            f"{arch}: --pretrain {pretrain} is not downloadable here: train with --pretrain scratch, or convert "
            f"pytorchvideo's Kinetics-400 checkpoint with `python tools/convert_checkpoint.py IN.pyth OUT.pth.tar "
            f"--from pytorchvideo --arch {arch}` and start from it with --tune_from OUT.pth.tar")
    if pretrain != 'scratch':
        raise ValueError(f"{arch}: unknown --pretrain {pretrain!r}: expected 'scratch'")


def x3d_layout(name: str, input_size: Optional[int] = None, feature_dim: int = HEAD_WIDTH) -> Layout:
    """X3D's ``Layout`` in pytorchvideo's names: stem ``blocks.0``, stages res2..res5 ``blocks.1-4``, head conv5 +
    pool + 2048-d projection, then the global mean; the classifier ``blocks.5.proj``.

    The stem has no temporal stride (nor has any stage), so a clustering after stage 1 sees all F frames.
    """
    return Layout(stem=('blocks.0',), stages=[[f'blocks.{i}'] for i in range(1, 5)],
                  stage_names=['res2', 'res3', 'res4', 'res5'], head=('blocks.5.pool', 'blocks.5.output_pool'),
                  classifier='blocks.5.proj', feature_dim=feature_dim, first_conv='blocks.0.conv.conv_t',
                  input_size=input_size or X3D_SPECS[name].train_size, input_mean=PYTORCHVIDEO_MEAN, input_std=PYTORCHVIDEO_STD,
                  clip=True)


def build(arch: str, pretrain: str = 'scratch', zero_init_residual: bool = False) -> Tuple[X3D, Layout]:
    """The registry's builder: X3D-XS/S/M/L at random (``pretrain='scratch'``; pytorchvideo's weights come
    through ``tools/convert_checkpoint.py --from pytorchvideo`` and ``--tune_from``).

    ``zero_init_residual`` zeroes the last BatchNorm of every residual branch, so each block starts as its shortcut.
    """
    no_download(arch, pretrain)
    model = build_x3d(arch)
    if zero_init_residual:
        zero_residual_branches(model)
    return model, x3d_layout(arch)


def build_x2d(arch: str, pretrain: str = 'scratch', zero_init_residual: bool = False, width: float = 1.0,
              bottleneck: float = 1.0, depth: float = 1.0, head_width: int = HEAD_WIDTH) -> Tuple[X3D, Layout]:
    """The registry's ``x2d``: ``expanded_x2d(width, bottleneck, depth, head_width=head_width)`` at random (the
    backbone options; factors 1: X2D itself, input 112^2), for X3D's expansion search (``tools/x3d_expand.py``)."""
    no_download(arch, pretrain)
    model = expanded_x2d(width, bottleneck, depth, head_width=head_width)
    if zero_init_residual:
        zero_residual_branches(model)
    return model, x3d_layout(arch, input_size=112, feature_dim=head_width)
