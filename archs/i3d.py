"""I3D-ResNet-50: a 2D ResNet-50 inflated to 3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017).

Inflation (Sec. 2.2 of Carreira & Zisserman): a 2D kernel ``k x k`` becomes ``t x k x k``, the 2D kernel repeated
``t`` times along time and divided by ``t``, so that a "boring video" of identical frames gives the 2D network's
activations (``inflate_conv``).

Temporal kernels and strides are those of the I3D-ResNet-50 of Wang et al., "Non-local Neural Networks"
(CVPR 2018), as mmaction2 ships it: ``configs/_base_/models/i3d_r50.py`` of open-mmlab/mmaction2 with the
defaults of its ``ResNet3d`` (``mmaction/models/backbones/resnet3d.py``):

- conv1 5x7x7, stride (2, 2, 2), padding (2, 3, 3)  (``conv1_kernel=(5, 7, 7)``, ``conv1_stride_t=2``);
- pool1 max 1x3x3, stride (2, 2, 2), padding (0, 1, 1)  (``pool1_stride_t=2``);
- pool2 max 2x1x1, stride (2, 1, 1) after res2  (``with_pool2=True``);
- ``inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))`` with ``inflate_style='3x1x1'``: in an
  inflated bottleneck the first 1x1 conv becomes 3x1x1 (padding 1 in time), the 3x3 conv stays 1x3x3; the
  spatial stride sits on the 3x3 conv (``style='pytorch'``, as torchvision) and no block strides in time;
- global average pool, dropout 0.5, fc (mmaction2's ``I3DHead``).

A 32-frame clip leaves res2 with 8 frames and res3-res5 with 4. mmaction2 reports 43.56 G "FLOPs" (mmcv's
counter, one multiply-add per FLOP, i.e. MACs) for this model on 32 frames (``configs/recognition/i3d/
metafile.yml``, ``i3d_r50_32x2x1_100e_kinetics400_rgb``; the input size of that count is not stated there).
torch's FLOP counter (conv and fc multiply-adds only) gives this module 33.13 GMACs at 32x224x224, 8.28 at
8x224x224 and 43.27 at 32x256x256 (mmaction2's test crop is 256; mmcv also counts BatchNorm, ReLU and pools).

Parameter names are torchvision's ResNet-50 names (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``layer1.0.downsample.0``, ``fc``), so a 2D state dict maps one to one; ``map_resnet50_keys`` also reads our
and TSM's TSN checkpoints (``module.base_model.layer1.0.conv1.net.weight``).
"""
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from archs.base import Layout

# per res stage, per block: 1 = the block's first conv is 3x1x1 (mmaction2's i3d_r50.py)
I3D_R50_INFLATE = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))

Source = Union[None, str, os.PathLike, Dict[str, torch.Tensor], nn.Module]


def inflate_conv(weight_2d: torch.Tensor, t: int) -> torch.Tensor:
    """I3D's inflation: ``(O, I, kh, kw) -> (O, I, t, kh, kw)``, the 2D kernel repeated over ``t`` and divided by ``t``.

    On ``t`` identical frames the 3D convolution then equals the 2D one (Carreira & Zisserman, Sec. 2.2).
    """
    if weight_2d.dim() != 4:
        raise ValueError(f"inflate_conv: expected a 2D conv weight (O, I, kh, kw), got shape {tuple(weight_2d.shape)}")
    if t < 1:
        raise ValueError(f"inflate_conv: temporal size t must be >= 1, got {t}")
    return weight_2d.unsqueeze(2).repeat(1, 1, t, 1, 1) / t


class TConv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameter names) whose temporal padding is zeros (published) or replicated frames.

    ``temporal_padding='replicate'`` repeats the first and last frame instead of padding zeros, so the inflated
    network keeps the boring-video fixed point also at the ends of the clip; spatial padding stays zeros.
    """

    def __init__(self, cin: int, cout: int, kernel: Sequence[int], stride: Sequence[int] = (1, 1, 1),
                 temporal_padding: str = 'zeros') -> None:
        if temporal_padding not in ('zeros', 'replicate'):
            raise ValueError(f"temporal_padding must be 'zeros' or 'replicate', got {temporal_padding!r}")
        kt, kh, kw = kernel
        self.pad_t = (kt - 1) // 2
        self.replicate_t = temporal_padding == 'replicate' and self.pad_t > 0
        padding = (0 if self.replicate_t else self.pad_t, (kh - 1) // 2, (kw - 1) // 2)
        super().__init__(cin, cout, tuple(kernel), stride=tuple(stride), padding=padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.replicate_t:
            x = F.pad(x, (0, 0, 0, 0, self.pad_t, self.pad_t), mode='replicate')
        return super().forward(x)


class Bottleneck3d(nn.Module):
    """torchvision's ResNet-50 bottleneck in 3D: ``(N, Cin, T, H, W) -> (N, 4*planes, T, H/stride, W/stride)``."""
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, inflate: bool, temporal_padding: str) -> None:
        super().__init__()
        t1 = 3 if inflate else 1
        self.conv1 = TConv3d(inplanes, planes, (t1, 1, 1), temporal_padding=temporal_padding)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = TConv3d(planes, planes, (1, 3, 3), (1, stride, stride))
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = TConv3d(planes, planes * 4, (1, 1, 1))
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: Optional[nn.Module] = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(TConv3d(inplanes, planes * 4, (1, 1, 1), (1, stride, stride)),
                                            nn.BatchNorm3d(planes * 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class I3DResNet50(nn.Module):
    """I3D-ResNet-50 (see the module docstring); ``(N, 3, T, H, W) -> (N, num_classes)``."""

    def __init__(self, num_classes: int, dropout: float = 0.5, inflate: Sequence[Sequence[int]] = I3D_R50_INFLATE,
                 conv1_t: int = 5, conv1_stride_t: int = 2, pool1_stride_t: int = 2, with_pool2: bool = True,
                 temporal_padding: str = 'zeros') -> None:
        super().__init__()
        self.conv1 = TConv3d(3, 64, (conv1_t, 7, 7), (conv1_stride_t, 2, 2), temporal_padding=temporal_padding)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(pool1_stride_t, 2, 2), padding=(0, 1, 1))
        self.pool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1)) if with_pool2 else nn.Identity()
        inplanes = 64
        for i, (planes, flags) in enumerate(zip((64, 128, 256, 512), inflate)):
            blocks = []
            for j, flag in enumerate(flags):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(Bottleneck3d(inplanes, planes, stride, bool(flag), temporal_padding))
                inplanes = planes * 4
            setattr(self, f'layer{i + 1}', nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1, bn1, relu, pool1: ``(N, 3, T, H, W) -> (N, 64, T/4, H/4, W/4)`` with the published strides."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Everything before the pool: ``(N, 3, T, H, W) -> (N, 2048, T/8, H/32, W/32)`` (published strides)."""
        x = self.pool2(self.layer1(self.stem(x)))
        return self.layer4(self.layer3(self.layer2(x)))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Global average, dropout, fc: ``(N, 2048, t, h, w) -> (N, num_classes)``."""
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def map_resnet50_keys(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """2D ResNet-50 backbone keys in torchvision's names, from torchvision's, ours or TSM's checkpoints.

    Drops ``module.`` (DataParallel) and ``base_model.`` (TSN) prefixes and the ``net`` component of TSM's
    shift wrapper (``layer1.0.conv1.net.weight -> layer1.0.conv1.weight``); keeps only ``conv1.*``, ``bn1.*``
    and ``layer*`` keys (classifiers ``fc``/``new_fc`` are not part of the backbone).
    """
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key[len('module.'):] if key.startswith('module.') else key
        name = name[len('base_model.'):] if name.startswith('base_model.') else name
        name = '.'.join(part for part in name.split('.') if part != 'net')
        if name.split('.')[0] in ('conv1', 'bn1') or name.startswith('layer'):
            out[name] = value
    return out


def _source_state_dict(source: Source) -> Dict[str, torch.Tensor]:
    if isinstance(source, nn.Module):
        return source.state_dict()
    if isinstance(source, str) and source == 'imagenet':
        from archs.resnet import build_resnet  # its error says where to put the file without network
        return build_resnet('resnet50', 'imagenet').state_dict()
    if isinstance(source, (str, os.PathLike)):
        from ops.checkpoint import load_checkpoint
        return load_checkpoint(os.fspath(source))['state_dict']
    if isinstance(source, dict):
        return source['state_dict'] if isinstance(source.get('state_dict'), dict) else source
    raise TypeError(f"source: expected None, 'imagenet', a checkpoint path, a state dict or a 2D model, "
                    f"got {type(source).__name__}")


def inflate_resnet50(model: I3DResNet50, source: Source) -> I3DResNet50:
    """Load a 2D ResNet-50 into ``model``: 3D conv weights by ``inflate_conv``, BatchNorm as is; fc stays new.

    Raises ``ValueError`` naming the keys that are missing or whose shapes do not fit (e.g. a Flow conv1).
    """
    src = map_resnet50_keys(_source_state_dict(source))
    own = model.state_dict()
    targets = [k for k in own if k.split('.')[0] in ('conv1', 'bn1') or k.startswith('layer')]
    missing = [k for k in targets if k not in src and not k.endswith('num_batches_tracked')]
    if missing:
        raise ValueError(f"inflate_resnet50: the 2D source lacks {len(missing)} ResNet-50 keys, e.g. {missing[:3]} "
                         f"(is it a ResNet-50? keys seen: {list(src)[:3]})")
    new = {}
    for k in (k for k in targets if k in src):
        w = src[k]
        if own[k].dim() == 5 and w.dim() == 4:
            w = inflate_conv(w, own[k].shape[2])
        if w.shape != own[k].shape:
            raise ValueError(f"inflate_resnet50: {k} has shape {tuple(src[k].shape)} in the 2D source, "
                             f"which does not inflate to {tuple(own[k].shape)} (a non-RGB conv1?)")
        new[k] = w.to(own[k].dtype)
    model.load_state_dict(new, strict=False)
    return model


def build_i3d_resnet50(num_classes: int, source: Source = None, dropout: float = 0.5,
                       temporal_padding: str = 'zeros') -> I3DResNet50:
    """I3D-ResNet-50 with mmaction2's i3d_r50 strides, inflated from ``source`` when it is not ``None``.

    Args:
        num_classes: outputs of the (new) classifier.
        source: ``None`` (random, torchvision's init), ``'imagenet'`` (torchvision's ResNet-50 ImageNet weights
            from its cache), a checkpoint path, a state dict (torchvision's, ours or TSM's) or a 2D ResNet-50.
        temporal_padding: ``'zeros'`` (published) or ``'replicate'`` (see ``TConv3d``).
    """
    model = I3DResNet50(num_classes, dropout=dropout, temporal_padding=temporal_padding)
    return model if source is None else inflate_resnet50(model, source)


def i3d_layout(model: I3DResNet50) -> Layout:
    """I3D-ResNet-50's ``Layout`` (torchvision's ResNet names): pool2 opens stage 2.

    The published stem already shortens time by 4 (conv1 and pool1, stride 2 each), so the clustering point after
    stage 1 (layer1, which keeps time) sees F/4 time steps of F input frames; they are grouped into G clusters, and
    pool2 halves those G steps before layer2.
    """
    return Layout(stem=('conv1', 'bn1', 'relu', 'maxpool'), stages=[['layer1'], ['pool2', 'layer2'], ['layer3'],
                                                                    ['layer4']],
                  stage_names=[f'layer{i}' for i in range(1, 5)], head=('avgpool',), classifier='fc',
                  feature_dim=model.fc.in_features, first_conv='conv1', clip=True)


def build(arch: str = 'i3d_resnet50', pretrain: str = 'imagenet',
          zero_init_residual: bool = False) -> Tuple[I3DResNet50, Layout]:
    """The registry's builder: inflated from torchvision's ImageNet ResNet-50 (``pretrain='imagenet'``) or random."""
    if pretrain not in ('imagenet', 'scratch'):
        raise ValueError(f"i3d_resnet50: --pretrain {pretrain!r}: expected 'imagenet' (inflated) or 'scratch'")
    model = build_i3d_resnet50(400, source='imagenet' if pretrain == 'imagenet' else None)
    if zero_init_residual and pretrain == 'scratch':
        for m in model.modules():
            if isinstance(m, Bottleneck3d):
                nn.init.zeros_(m.bn3.weight)
    return model, i3d_layout(model)
