"""torchvision ResNets for TSN (``--arch resnet18/34/50/101``), with offline-safe pretrained weights.

The layout is TSM's: stem ``conv1, bn1, relu, maxpool``, stages ``layer1`` to ``layer4``, pooling ``avgpool``,
classifier ``fc``. The ``blockres`` shift wraps each residual block's ``conv1`` (``layer1.0.conv1.net.weight``),
``block`` wraps the whole block; ResNet-101 and deeper shift every second block in ``blockres``, as TSM does.

``pretrain='imagenet'`` asks torchvision for its ImageNet weights (offline: ``archs.base.torchvision_model``).
"""
from typing import Tuple

import torch.nn as nn

from archs.base import Layout, torchvision_model

RESNETS = {
    'resnet18': ('resnet18', 'ResNet18_Weights'),
    'resnet34': ('resnet34', 'ResNet34_Weights'),
    'resnet50': ('resnet50', 'ResNet50_Weights'),
    'resnet101': ('resnet101', 'ResNet101_Weights'),
}


def build_resnet(arch: str, pretrain: str = 'imagenet', zero_init_residual: bool = False) -> nn.Module:
    """A torchvision ResNet, ImageNet-initialised when ``pretrain == 'imagenet'``, random when ``'scratch'``.

    ``zero_init_residual`` (from scratch only) starts the last BatchNorm of every residual block at zero, so each
    block begins as the identity (Goyal et al. 2017); ImageNet weights overwrite it.
    """
    if arch not in RESNETS:
        raise ValueError(f"unknown --arch {arch!r}: expected one of {sorted(RESNETS)}")
    fn_name, weights_name = RESNETS[arch]
    return torchvision_model(fn_name, weights_name, arch, pretrain, zero_init_residual=zero_init_residual)


def resnet_layout(net: nn.Module) -> Layout:
    """The ``Layout`` of a torchvision ResNet (TSM's shift placements)."""
    stages = [f'layer{i}' for i in range(1, 5)]
    # TSM shifts every second residual block of very deep nets (ResNet-101: 23 blocks in layer3).
    n_round = 2 if len(net.layer3) >= 23 else 1
    blockres = [[f'{s}.{i}.conv1' for i in range(len(net.get_submodule(s))) if i % n_round == 0] for s in stages]
    block = [[f'{s}.{i}' for i in range(len(net.get_submodule(s)))] for s in stages]
    return Layout(stem=('conv1', 'bn1', 'relu', 'maxpool'), stages=[[s] for s in stages], stage_names=stages,
                  head=('avgpool',), classifier='fc', feature_dim=net.fc.in_features, first_conv='conv1',
                  shift_sites={'blockres': blockres, 'block': block})


def build(arch: str, pretrain: str = 'imagenet', zero_init_residual: bool = False) -> Tuple[nn.Module, Layout]:
    """The registry's builder: ``build_resnet`` and its layout."""
    net = build_resnet(arch, pretrain, zero_init_residual)
    return net, resnet_layout(net)
