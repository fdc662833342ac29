"""SlowFast-R50 (Feichtenhofer et al., "SlowFast Networks for Video Recognition", ICCV 2019).

Two ResNet-50 pathways see the same clip: the Fast pathway every frame with beta = 1/8 of the channels,
the Slow pathway every alpha-th frame with full width. After the stem and after res2, res3 and res4 a
lateral connection (Section 3.4, "time-strided convolution") maps Fast to Slow: a (k, 1, 1) convolution
with temporal stride alpha doubling the Fast channels, BN, ReLU, concatenated to the Slow features.
Temporal kernels are those of the paper's Table 1: the Slow pathway is non-temporal (1x1x1) in res2 and
res3 and temporal (3x1x1 first convolution) in res4 and res5; the Fast pathway is temporal everywhere.

``blocks = [stem, res2, res3, res4, res5, pool, head]`` (an ``nn.ModuleList``); every entry but the head
takes and returns the list ``[slow, fast]``. ``pathways`` (``PathwaySplit``, no parameters) makes that list from
one clip, so ``TSN`` runs the network from its ``Layout`` (``pathways = 2``). Inside ``archs.base``'s
``slow_pathway_context`` the Slow pathway takes every frame and the lateral connections are computed at every
Fast frame and mapped (the full-video clustering, docs/DESIGN.md §7). Module names are those of pytorchvideo's ``create_slowfast``,
so the state dicts of its Kinetics-400 checkpoints ``SLOWFAST_8x8_R50.pyth`` (alpha 4, fusion kernel 7)
and ``SLOWFAST_4x16_R50.pyth`` (alpha 8, fusion kernel 5, as PySlowFast's config) load with
``load_state_dict(strict=True)``.

Costs per clip of 32 fast frames at 256^2 (torch's ``FlopCounterMode``, MACs = FLOPs / 2, 400 classes,
measured on meta tensors), ours against pytorchvideo 0.1.5's ``create_slowfast`` with the same settings:

    SlowFast-R50 8x8  (alpha 4, fusion kernel 7)   65.709 GMACs (pytorchvideo 65.712)   34,566,488 parameters
    SlowFast-R50 4x16 (alpha 8, fusion kernel 5)   36.099 GMACs (pytorchvideo 36.102)   34,480,216 parameters

(pytorchvideo applies the classifier at each of the 2x2 positions its 7x7 head windows leave at 256 px, then
averages; ours averages, then classifies once: 0.003 G less, the same logits.) The head averages time whole
(``PoolConcat``): pytorchvideo's time windows (T/alpha and T of the training clip) are the whole clip at the zoo's
T, and the same then; any other clip length or a clustered Slow pathway would leave the pathways with different
numbers of windows.

(36.305 GMACs and 34.57 M parameters for alpha 8 belong to fusion kernel 7, i.e. ``fusion_kernel=7``; the
4x16 checkpoint's 34.48 M parameters are those of kernel 5.)
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from archs.base import Layout, slow_pathway_map
from archs.x3d import PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD, ThreeConvs, clipped_avg_pool, no_download

DEPTHS = (3, 4, 6, 3)                               # ResNet-50 blocks in res2..res5
SLOW_WIDTHS = (256, 512, 1024, 2048)                # stage outputs; bottleneck inner width is a quarter
SLOW_TEMPORAL_KERNELS = (1, 1, 3, 3)                # first conv of each block, res2..res5 (Table 1)
FAST_TEMPORAL_KERNELS = (3, 3, 3, 3)
BETA_INV = 8                                        # Fast channels = Slow channels / 8
FUSION_CHANNEL_RATIO = 2                            # lateral conv: Fast channels -> 2 x Fast channels
FUSION_KERNELS = {4: 7, 8: 5}                       # temporal kernel of the lateral conv, per alpha (zoo)


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)


class Stem(nn.Module):
    """(kt, 7, 7) conv stride (1, 2, 2), BN, ReLU, 3x3 max pool stride 2: (N, 3, T, H, W) -> (N, C, T, H/4, W/4)."""

    def __init__(self, out_channels: int, temporal_kernel: int):
        super().__init__()
        self.conv = nn.Conv3d(3, out_channels, (temporal_kernel, 7, 7), stride=(1, 2, 2),
                              padding=(temporal_kernel // 2, 3, 3), bias=False)
        self.norm = _bn(out_channels)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.norm(self.conv(x))))


class Bottleneck(ThreeConvs):
    """(kt, 1, 1) conv, BN, ReLU, (1, 3, 3) conv with the spatial stride, BN, ReLU, 1x1x1 conv, BN."""

    def __init__(self, in_channels: int, inner: int, out_channels: int, temporal_kernel: int, stride: int):
        super().__init__()
        self.conv_a = nn.Conv3d(in_channels, inner, (temporal_kernel, 1, 1),
                                padding=(temporal_kernel // 2, 0, 0), bias=False)
        self.norm_a = _bn(inner)
        self.act_a = nn.ReLU()
        self.conv_b = nn.Conv3d(inner, inner, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.norm_b = _bn(inner)
        self.act_b = nn.ReLU()
        self.conv_c = nn.Conv3d(inner, out_channels, 1, bias=False)
        self.norm_c = _bn(out_channels)



class ResBlock(nn.Module):
    """ReLU(shortcut(x) + bottleneck(x)); the shortcut is a strided 1x1x1 conv + BN where shapes change."""

    def __init__(self, in_channels: int, inner: int, out_channels: int, temporal_kernel: int, stride: int):
        super().__init__()
        if in_channels != out_channels or stride != 1:
            self.branch1_conv = nn.Conv3d(in_channels, out_channels, 1, stride=(1, stride, stride), bias=False)
            self.branch1_norm = _bn(out_channels)
        else:
            self.branch1_conv = self.branch1_norm = None
        self.branch2 = Bottleneck(in_channels, inner, out_channels, temporal_kernel, stride)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.activation(shortcut + self.branch2(x))


class ResStage(nn.Module):
    """``depth`` residual blocks; the first one carries the spatial stride and changes the width."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, temporal_kernel: int, stride: int):
        super().__init__()
        self.res_blocks = nn.ModuleList(
            ResBlock(in_channels if i == 0 else out_channels, out_channels // 4, out_channels, temporal_kernel,
                     stride if i == 0 else 1)
            for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


class FuseFastToSlow(nn.Module):
    """Lateral connection: [slow (N, Cs, T/a, H, W), fast (N, Cf, T, H, W)] -> [slow ++ conv(fast), fast].

    The (k, 1, 1) convolution with temporal stride alpha gives 2 Cf channels at the Slow frame rate.
    """

    def __init__(self, fast_channels: int, alpha: int, kernel: int):
        super().__init__()
        self.conv_fast_to_slow = nn.Conv3d(fast_channels, FUSION_CHANNEL_RATIO * fast_channels, (kernel, 1, 1),
                                           stride=(alpha, 1, 1), padding=(kernel // 2, 0, 0), bias=False)
        self.norm = _bn(FUSION_CHANNEL_RATIO * fast_channels)
        self.activation = nn.ReLU()

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        slow, fast = x
        to_slow = slow_pathway_map()
        if to_slow is None:
            lateral = self.activation(self.norm(self.conv_fast_to_slow(fast)))
        else:  # clustered Slow pathway (archs/base.py's slow_pathway_context): at every Fast frame, then mapped
            conv = self.conv_fast_to_slow
            dense = F.conv3d(fast, conv.weight, None, stride=1, padding=conv.padding)
            lateral = to_slow(self.activation(self.norm(dense)))
        if lateral.shape[2:] != slow.shape[2:]:
            raise ValueError(
                f"archs/slowfast.py: the lateral connection gives {tuple(lateral.shape[2:])} (T, H, W) but the "
                f"Slow pathway has {tuple(slow.shape[2:])}: the Fast clip's length must be alpha times the Slow one's")
        return [torch.cat([slow, lateral], dim=1), fast]


class TwoPathways(nn.Module):
    """One block per pathway, then the lateral connection (absent after res5): [slow, fast] -> [slow, fast]."""

    def __init__(self, slow: nn.Module, fast: nn.Module, fusion: Optional[FuseFastToSlow]):
        super().__init__()
        self.multipathway_blocks = nn.ModuleList([slow, fast])
        self.multipathway_fusion = fusion

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        x = [block(path) for block, path in zip(self.multipathway_blocks, x)]
        return x if self.multipathway_fusion is None else self.multipathway_fusion(x)


class PoolConcat(nn.Module):
    """Average each pathway over all its time steps and over ``window`` x ``window`` positions (stride 1, None: all
    of them), concatenate channels: [(N, Cs, Ts, h, w), (N, Cf, Tf, h, w)] -> (N, Cs + Cf, 1, h', w').

    pytorchvideo pools time over the training clip's window (T/alpha and T steps), which is the whole clip at the
    zoo's T and gives the same; at any other length the two pathways would give different numbers of windows
    (a Fast clip over 32 frames, or a clustered Slow pathway of G != T/alpha cluster means), so time is averaged
    whole here. Space keeps the zoo's window, whose positions the head averages after its classifier.
    """

    def __init__(self, window: Optional[int]):
        super().__init__()
        self.window = window

    def forward(self, x: List[torch.Tensor]) -> torch.Tensor:
        kernel = None if self.window is None else (1, self.window, self.window)
        return torch.cat([clipped_avg_pool(path.mean(dim=2, keepdim=True), kernel) for path in x], dim=1)


class Head(nn.Module):
    """Dropout, mean over positions, linear classifier: (N, C, T', h', w') -> (N, num_classes) logits.

    ``output_pool`` (no parameters) is the mean; pytorchvideo applies it after the classifier (the same: affine).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_channels, num_classes)
        self.output_pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.flatten(self.output_pool(self.dropout(x)), 1))


SLOW_FRAMES = ('stride', 'linspace')


class PathwaySplit(nn.Module):
    """One clip -> the two pathways' inputs: (N, 3, T, H, W) -> [slow (N, 3, T_slow, H, W), fast = clip].

    ``slow_frames`` 'stride': frames 0, alpha, 2 alpha, ... (T_slow = ceil(T / alpha)), where the strided lateral
    connections sample the Fast pathway; 'linspace': the T / alpha frames PySlowFast's and pytorchvideo's data
    loaders pick (``PackPathway``: ``torch.linspace(0, T - 1, T // alpha)``, e.g. 0, 4, 8, 13, ..., 31 of 32),
    the protocol their checkpoints were trained and tested with; T must then be a multiple of alpha. Inside
    ``slow_pathway_context`` (the clustering) every frame. No parameters: the state dict stays pytorchvideo's.
    """

    def __init__(self, alpha: int, slow_frames: str = 'stride'):
        super().__init__()
        if slow_frames not in SLOW_FRAMES:
            raise ValueError(f"archs/slowfast.py: slow_frames {slow_frames!r}: one of {SLOW_FRAMES}")
        self.alpha, self.slow_frames = alpha, slow_frames
        self._indices: Dict[Tuple[int, torch.device], torch.Tensor] = {}

    def linspace_indices(self, t: int, device: torch.device) -> torch.Tensor:
        """PackPathway's frames of a T-frame clip, computed as it computes them (float ``torch.linspace`` on the
        CPU, truncated: 52 where the exact value is 53 for T = 160, alpha 4), once per (T, device): no copy to the
        device in the forward pass, and an exported graph holds them as constants (a fixed T)."""
        key = (t, device)
        if key not in self._indices:
            self._indices[key] = torch.linspace(0, t - 1, t // self.alpha).long().to(device)
        return self._indices[key]

    def forward(self, clip: torch.Tensor) -> List[torch.Tensor]:
        if clip.dim() != 5 or clip.shape[1] != 3:
            raise ValueError(f"archs/slowfast.py: SlowFast takes a clip (N, 3, T, H, W), got {tuple(clip.shape)}")
        if slow_pathway_map() is not None:
            return [clip, clip]
        if self.slow_frames == 'stride':
            return [clip[:, :, ::self.alpha], clip]
        t = clip.shape[2]
        if t % self.alpha:
            raise ValueError(f"archs/slowfast.py: slow_frames 'linspace' takes T / alpha frames: T = {t} is not a "
                             f"multiple of alpha = {self.alpha}")
        return [clip.index_select(2, self.linspace_indices(t, clip.device)), clip]


class SlowFast(nn.Module):
    """SlowFast-R50: ``[slow (N, 3, T/alpha, H, W), fast (N, 3, T, H, W)]`` or one fast clip -> (N, classes) logits.

    Given one tensor (N, 3, T, H, W), the Slow pathway takes frames 0, alpha, 2 alpha, ... of it, or with
    ``slow_frames='linspace'`` the T/alpha frames PySlowFast's data loader picks (``PathwaySplit``).
    """

    def __init__(self, num_classes: int = 400, alpha: int = 4, fusion_kernel: Optional[int] = None,
                 head_pool_window: Optional[int] = None, dropout: float = 0.5,
                 slow_frames: str = 'stride'):
        super().__init__()
        if fusion_kernel is None:
            if alpha not in FUSION_KERNELS:
                raise ValueError(f"archs/slowfast.py: no published fusion kernel for alpha={alpha} "
                                 f"(known: {FUSION_KERNELS}); pass fusion_kernel")
            fusion_kernel = FUSION_KERNELS[alpha]
        self.alpha = alpha
        self.pathways = PathwaySplit(alpha, slow_frames)
        slow_in, fast_in = 64, 64 // BETA_INV
        blocks = [TwoPathways(Stem(slow_in, 1), Stem(fast_in, 5), FuseFastToSlow(fast_in, alpha, fusion_kernel))]
        for i, (width, depth) in enumerate(zip(SLOW_WIDTHS, DEPTHS)):
            stride = 1 if i == 0 else 2
            fast_width = width // BETA_INV
            slow_in += FUSION_CHANNEL_RATIO * fast_in  # the lateral connection's channels
            fusion = FuseFastToSlow(fast_width, alpha, fusion_kernel) if i < len(DEPTHS) - 1 else None
            blocks.append(TwoPathways(ResStage(slow_in, width, depth, SLOW_TEMPORAL_KERNELS[i], stride),
                                      ResStage(fast_in, fast_width, depth, FAST_TEMPORAL_KERNELS[i], stride),
                                      fusion))
            slow_in, fast_in = width, fast_width
        blocks += [PoolConcat(head_pool_window), Head(slow_in + fast_in, num_classes, dropout)]
        self.blocks = nn.ModuleList(blocks)

    def split(self, clip: torch.Tensor) -> List[torch.Tensor]:
        """(N, 3, T, H, W) -> [slow (N, 3, ceil(T / alpha), H, W), fast = clip] (``PathwaySplit``)."""
        return self.pathways(clip)

    def forward(self, x: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            x = self.split(x)
        x = list(x)
        if len(x) != 2:
            raise ValueError(f"archs/slowfast.py: SlowFast takes [slow, fast], got a list of {len(x)} tensors")
        for block in self.blocks:
            x = block(x)
        return x


def build_slowfast(name: str = 'slowfast_r50', num_classes: int = 400, alpha: int = 4, train_size: int = 224,
                   zoo_head_pool: bool = True, dropout: float = 0.5, fusion_kernel: Optional[int] = None,
                   slow_frames: str = 'stride') -> SlowFast:
    """SlowFast-R50, randomly initialised, for clips of any length T (the Slow pathway: T/alpha frames or G
    cluster means).

    ``zoo_head_pool`` pools space over the training window (train_size/32 positions a side) as pytorchvideo does,
    so that its weights give its logits at 256 px too; False pools globally (``PoolConcat``; time is always whole).
    ``fusion_kernel`` None takes the published checkpoint's for ``alpha`` (7 for 4, 5 for 8).
    """
    if name != 'slowfast_r50':
        raise ValueError(f"archs/slowfast.py: unknown SlowFast {name!r}: expected 'slowfast_r50'")
    side = -(-train_size // 32)
    return SlowFast(num_classes, alpha, fusion_kernel, side if zoo_head_pool else None, dropout, slow_frames)


def slowfast_layout() -> Layout:
    """SlowFast's ``Layout`` in pytorchvideo's names (``pathways = 2``): the stem ``pathways`` (the clip split into
    [slow, fast]) and ``blocks.0``; stages res2..res5 ``blocks.1-4`` (each takes and returns [slow, fast], with the
    lateral connection); head: ``blocks.5`` pools each pathway and concatenates, then the global mean; the
    classifier ``blocks.6.proj``."""
    return Layout(stem=('pathways', 'blocks.0'), stages=[[f'blocks.{i}'] for i in range(1, 5)],
                  stage_names=['res2', 'res3', 'res4', 'res5'], head=('blocks.5', 'blocks.6.output_pool'),
                  classifier='blocks.6.proj', feature_dim=SLOW_WIDTHS[-1] + SLOW_WIDTHS[-1] // BETA_INV,
                  first_conv='blocks.0.multipathway_blocks.0.conv', input_size=224, input_mean=PYTORCHVIDEO_MEAN,
                  input_std=PYTORCHVIDEO_STD, clip=True, pathways=2)


def build(arch: str, pretrain: str = 'scratch', zero_init_residual: bool = False,
          alpha: int = 4, fusion_kernel: Optional[int] = None, slow_frames: str = 'stride') -> Tuple[SlowFast, Layout]:
    """The registry's builder: SlowFast-R50 at random with ``alpha`` (4: 8x8, 8: 4x16) and the lateral connections'
    temporal kernel ``fusion_kernel`` (None: the published checkpoint's for ``alpha``).

    ``slow_frames``: which frames the Slow pathway takes (``PathwaySplit``: 'stride' or PySlowFast's 'linspace').
    All are backbone options (``TSN(backbone_options={'alpha': a})``; ``--slowfast_alpha`` sets alpha,
    ``--slowfast_slow_frames`` slow_frames). pytorchvideo's
    weights come through ``tools/convert_checkpoint.py --from pytorchvideo`` and ``--tune_from``.
    ``zero_init_residual`` zeroes the last BatchNorm of every residual branch.
    """
    no_download(arch, pretrain)
    model = build_slowfast(arch, alpha=alpha, fusion_kernel=fusion_kernel, slow_frames=slow_frames)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.norm_c.weight)
    return model, slowfast_layout()
