"""TSM's MobileNetV2 (``--arch mobilenetv2``): torchvision's network in TSM's layout and parameter names.

torchvision nests each inverted residual's convolutions (``features.2.conv.0.0.weight``); TSM's
``archs/mobilenet_v2.py`` (after tonylins' pytorch-mobilenet-v2) keeps them in one flat ``Sequential``:
``pw conv, BN, ReLU6, dw conv, BN, ReLU6, pw-linear conv, BN`` (without the first three when the expansion is 1).
``build`` flattens torchvision's blocks into that order, so TSM's MobileNetV2 checkpoints load by name
(``base_model.features.2.conv.0.net.weight``, ``new_fc.weight``) and torchvision's ImageNet weights are used.

Shift placement, as TSM: the first (expanding 1x1) convolution of every inverted residual block that has a
residual connection and an expansion (``len(conv) == 8``) is wrapped; 10 shifts in MobileNetV2. TSM offers
no ``block`` placement and no temporal pool for this network.

Stages follow the output stride, as ResNet's ``layer1-4``: stem ``features.0`` (stride 2), stage 1
``features.1-3`` (stride 4, 24 channels; the paper's clustering point), stage 2 ``features.4-6`` (stride 8),
stage 3 ``features.7-13`` (stride 16), stage 4 ``features.14-18`` (stride 32, ending in the 1280-wide 1x1 conv).
"""
from typing import List, Tuple

import torch.nn as nn

from archs.base import Layout, torchvision_model

STAGES = ((1, 4), (4, 7), (7, 14), (14, 19))  # [start, stop) indices into ``features``


def flatten_blocks(net: nn.Module) -> None:
    """Rewrite every inverted residual's ``conv`` as TSM's flat ``Sequential`` (same modules, same order)."""
    for block in net.features:
        if hasattr(block, 'use_res_connect'):
            flat: List[nn.Module] = []
            for m in block.conv:
                flat.extend(m.children() if isinstance(m, nn.Sequential) else [m])
            block.conv = nn.Sequential(*flat)


def mobilenet_layout(net: nn.Module) -> Layout:
    """The ``Layout`` of a flattened MobileNetV2 (``flatten_blocks``)."""
    stages = [[f'features.{i}' for i in range(a, b)] for a, b in STAGES]
    shifted = [[f'{p}.conv.0' for p in stage if getattr(net.get_submodule(p), 'use_res_connect', False)
                and len(net.get_submodule(p).conv) == 8] for stage in stages]
    return Layout(stem=('features.0',), stages=stages, stage_names=[f'stage{i}' for i in range(1, 5)],
                  head=('avgpool',), classifier='classifier', feature_dim=net.last_channel,
                  first_conv='features.0.0', shift_sites={'blockres': shifted})


def build(arch: str = 'mobilenetv2', pretrain: str = 'imagenet',
          zero_init_residual: bool = False) -> Tuple[nn.Module, Layout]:
    """torchvision's MobileNetV2 (ImageNet weights with ``pretrain='imagenet'``) in TSM's layout.

    ``zero_init_residual`` (from scratch only) starts the last BatchNorm of every residual block at zero.
    """
    net = torchvision_model('mobilenet_v2', 'MobileNet_V2_Weights', arch, pretrain)
    flatten_blocks(net)
    net.avgpool = nn.AdaptiveAvgPool2d(1)  # TSM adds it too; torchvision pools in forward()
    if zero_init_residual and pretrain == 'scratch':
        for block in net.features:
            if getattr(block, 'use_res_connect', False):
                nn.init.zeros_(block.conv[-1].weight)
    return net, mobilenet_layout(net)
