"""Backbones: the registry from ``--arch`` to a builder (docs/DESIGN.md §7).

A builder is ``build(arch, pretrain='imagenet'|'scratch', zero_init_residual=False) -> (net, Layout)``; the
``Layout`` (``archs.base``) tells ``TSN`` the stem, the stages, the pooling, the feature width and where a
temporal shift can go. A new backbone is one file here and one line in ``BACKBONES``.
"""
import functools
from typing import Callable, Dict, List, Tuple

import torch.nn as nn

from archs import mobilenet_v2, resnet
from archs.base import Layout

BACKBONES: Dict[str, Callable[..., Tuple[nn.Module, Layout]]] = {
    'resnet18': functools.partial(resnet.build, 'resnet18'),
    'resnet34': functools.partial(resnet.build, 'resnet34'),
    'resnet50': functools.partial(resnet.build, 'resnet50'),
    'resnet101': functools.partial(resnet.build, 'resnet101'),
    'mobilenetv2': functools.partial(mobilenet_v2.build, 'mobilenetv2'),
}


def arch_names() -> List[str]:
    """The ``--arch`` choices."""
    return list(BACKBONES)


def build_backbone(arch: str, pretrain: str = 'imagenet', zero_init_residual: bool = False) -> Tuple[nn.Module, Layout]:
    """The network and layout registered as ``arch``; an unknown name is a ValueError listing the known ones."""
    if arch not in BACKBONES:
        raise ValueError(f"unknown --arch {arch!r}: expected one of {arch_names()}")
    return BACKBONES[arch](pretrain=pretrain, zero_init_residual=zero_init_residual)
