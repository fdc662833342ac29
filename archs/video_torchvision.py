"""torchvision's video classifiers (R3D-18, MC3-18, R(2+1)D-18, S3D), wrapped, not copied.

``build_video_model`` returns torchvision's own module with a new classifier; ``video_layout`` names its stem,
stages and head (``archs.base.Layout``), which is how ``TSN``, the clustering point and the tests walk it (running
the layout in order reaches what the model's ``forward`` feeds its classifier: a test checks it).

Input: a clip ``(N, 3, T, H, W)``; output: logits ``(N, num_classes)``.

``pretrain='kinetics400'`` asks torchvision for its Kinetics-400 weights. They come from torchvision's cache
(``$TORCH_HOME/hub/checkpoints``) or a download; without network and without the cached file the error says
which file to put where, as ``archs/resnet.py`` does for ImageNet.
"""
from typing import Callable, Dict, Tuple

import torch.nn as nn
import torchvision.models.video as tvv

from archs.base import Layout, with_weights

# name -> (builder, weights enum). Temporal downsampling, read in torchvision/models/video/{resnet,s3d}.py
# (the clustering point after the layout's stage 1 sees every frame, except in S3D: docs/DESIGN.md §7):
#   r3d_18:      stem stride (1,2,2); layer1 stride 1; layer2's first Conv3DSimple has stride (2,2,2).
#   mc3_18:      only layer1 is 3D; layer2-4 use Conv3DNoTemporal, stride (1,2,2): time is kept to the head.
#   r2plus1d_18: stem (1,7,7)+(3,1,1), stride 1 in time; layer2's Conv2Plus1D has temporal stride 2.
#   s3d:         Conv_1a (the stem) is a TemporalSeparableConv of stride 2 in time: stage 1 sees T/2 steps.
_MODELS: Dict[str, Tuple[Callable[..., nn.Module], type]] = {
    'r3d_18': (tvv.r3d_18, tvv.R3D_18_Weights),
    'mc3_18': (tvv.mc3_18, tvv.MC3_18_Weights),
    'r2plus1d_18': (tvv.r2plus1d_18, tvv.R2Plus1D_18_Weights),
    's3d': (tvv.s3d, tvv.S3D_Weights),
}
VIDEO_MODELS = tuple(_MODELS)

# S3D's `features` split at its Inception names: Conv_1a | MaxPool_2a..Conv_2c | MaxPool_3a..Mixed_3c |
# MaxPool_4a..Mixed_4f | MaxPool_5a..Mixed_5c (indices into torchvision's S3D.features).
_S3D_SPLITS = ((0, 1), (1, 4), (4, 7), (7, 13), (13, 16))


def kinetics_weights_file(name: str) -> str:
    """The file name torchvision caches the Kinetics-400 weights of ``name`` under (the url's last part)."""
    if name not in _MODELS:
        raise ValueError(f"unknown video model {name!r}: expected one of {list(VIDEO_MODELS)}")
    return _MODELS[name][1].KINETICS400_V1.url.rsplit('/', 1)[-1]


def build_video_model(name: str, num_classes: int, pretrain: str = 'scratch') -> nn.Module:
    """torchvision's ``name`` with a fresh ``num_classes``-way classifier; ``(N, 3, T, H, W) -> (N, num_classes)``.

    Args:
        name: one of ``VIDEO_MODELS``.
        num_classes: outputs of the new classifier (always new, also for 400: the Kinetics head is dropped).
        pretrain: ``'scratch'`` (random) or ``'kinetics400'`` (torchvision's KINETICS400_V1 weights).

    S3D keeps torchvision's dropout (0.2) before its classifier; the R3D family has none (as in torchvision).
    S3D's fixed ``AvgPool3d((2, 7, 7))`` is replaced by a global average: the same at 16x224x224 (its last map is
    2x7x7), and it lets S3D run on the small clips of our tests and quickstart.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown --arch {name!r}: expected one of {list(VIDEO_MODELS)}")
    if pretrain not in ('scratch', 'kinetics400'):
        raise ValueError(f"unknown --pretrain {pretrain!r} for {name}: expected 'scratch' or 'kinetics400'")
    builder, weights_enum = _MODELS[name]
    if pretrain == 'scratch':
        model = builder(weights=None)
    else:
        model = with_weights(builder, weights_enum.KINETICS400_V1, name, 'Kinetics-400')
    if name == 's3d':
        model.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        model.classifier[1] = nn.Conv3d(model.classifier[1].in_channels, num_classes, kernel_size=1, bias=True)
    else:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)  # torchvision's video weights


def video_layout(name: str, model: nn.Module) -> Layout:
    """The ``Layout`` of a model from ``build_video_model`` (a clip network: time stays an axis)."""
    common = dict(shift_sites={}, input_mean=KINETICS_MEAN, input_std=KINETICS_STD, clip=True)
    if isinstance(model, tvv.S3D):
        stages = [[f'features.{i}' for i in range(a, b)] for a, b in _S3D_SPLITS[1:]]
        return Layout(stem=('features.0',), stages=stages, stage_names=['2a-2c', '3a-3c', '4a-4f', '5a-5c'],
                      head=('avgpool',), classifier='classifier', feature_dim=model.classifier[1].in_channels,
                      first_conv='features.0.0.0', input_size=224, **common)
    return Layout(stem=('stem',), stages=[[f'layer{i}'] for i in range(1, 5)],
                  stage_names=[f'layer{i}' for i in range(1, 5)], head=('avgpool',), classifier='fc',
                  feature_dim=model.fc.in_features, first_conv='stem.0', input_size=112, **common)


def build(name: str, pretrain: str = 'kinetics400', zero_init_residual: bool = False) -> Tuple[nn.Module, Layout]:
    """The registry's builder: torchvision's ``name`` (Kinetics-400 weights with ``pretrain='kinetics400'``)."""
    if pretrain == 'imagenet':
        raise ValueError(f"{name} has no ImageNet weights: use --pretrain kinetics400 (torchvision's Kinetics-400 "
                         f"weights) or --pretrain scratch")
    model = build_video_model(name, 400, pretrain)
    if zero_init_residual and pretrain == 'scratch':
        if isinstance(model, tvv.S3D):
            raise ValueError("--zero_init_residual: S3D has no residual blocks")
        for m in model.modules():
            if isinstance(m, tvv.resnet.BasicBlock):
                nn.init.zeros_(m.conv2[1].weight)
    return model, video_layout(name, model)
