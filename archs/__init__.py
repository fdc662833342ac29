"""Backbones: the registry from ``--arch`` to a builder (docs/DESIGN.md §7).

A builder is ``build(arch, pretrain='imagenet'|'scratch', zero_init_residual=False) -> (net, Layout)``; the
``Layout`` (``archs.base``) tells ``TSN`` the stem, the stages, the pooling, the feature width and where a
temporal shift can go. A new backbone is one file here and one line in ``BACKBONES``. A builder may take more
keywords (backbone options: SlowFast's ``alpha``), which ``build_backbone(..., options=...)`` passes on.
"""
import functools
import inspect
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import torch.nn as nn

from archs import c3d, i3d, mobilenet_v2, resnet, slowfast, video_torchvision, x3d
from archs.base import Layout

BACKBONES: Dict[str, Callable[..., Tuple[nn.Module, Layout]]] = {
    'resnet18': functools.partial(resnet.build, 'resnet18'),
    'resnet34': functools.partial(resnet.build, 'resnet34'),
    'resnet50': functools.partial(resnet.build, 'resnet50'),
    'resnet101': functools.partial(resnet.build, 'resnet101'),
    'mobilenetv2': functools.partial(mobilenet_v2.build, 'mobilenetv2'),
    'r3d_18': functools.partial(video_torchvision.build, 'r3d_18'),
    'mc3_18': functools.partial(video_torchvision.build, 'mc3_18'),
    'r2plus1d_18': functools.partial(video_torchvision.build, 'r2plus1d_18'),
    's3d': functools.partial(video_torchvision.build, 's3d'),
    'c3d': functools.partial(c3d.build, 'c3d'),
    'i3d_resnet50': functools.partial(i3d.build, 'i3d_resnet50'),
    'x3d_xs': functools.partial(x3d.build, 'x3d_xs'),
    'x3d_s': functools.partial(x3d.build, 'x3d_s'),
    'x3d_m': functools.partial(x3d.build, 'x3d_m'),
    'x3d_l': functools.partial(x3d.build, 'x3d_l'),
    'x2d': functools.partial(x3d.build_x2d, 'x2d'),  # backbone options: width, bottleneck, depth (X3D's gammas)
    'slowfast_r50': functools.partial(slowfast.build, 'slowfast_r50'),  # backbone option: alpha
}


def arch_names() -> List[str]:
    """The ``--arch`` choices."""
    return list(BACKBONES)


def backbone_option_names(arch: str) -> List[str]:
    """The options ``arch``'s builder takes besides ``pretrain`` and ``zero_init_residual`` (SlowFast: ``alpha``)."""
    return list(backbone_option_defaults(arch))


def backbone_option_defaults(arch: str) -> Dict[str, Any]:
    """Those options with the builder's defaults (SlowFast: ``{'alpha': 4, 'fusion_kernel': None, ...}``)."""
    params = inspect.signature(BACKBONES[arch]).parameters
    return {name: p.default for name, p in params.items() if name not in ('arch', 'pretrain', 'zero_init_residual')}


def build_backbone(arch: str, pretrain: str = 'imagenet', zero_init_residual: bool = False,
                   options: Optional[Mapping[str, Any]] = None) -> Tuple[nn.Module, Layout]:
    """The network and layout registered as ``arch``; an unknown name is a ValueError listing the known ones.

    ``options``: keywords for builders that take more (``slowfast_r50``: ``{'alpha': 8}``); one the builder
    does not take is a ValueError.
    """
    if arch not in BACKBONES:
        raise ValueError(f"unknown --arch {arch!r}: expected one of {arch_names()}")
    unknown = sorted(set(options or {}) - set(backbone_option_names(arch)))
    if unknown:
        raise ValueError(f"--arch {arch} takes no backbone option {', '.join(unknown)} "
                         f"(its options: {backbone_option_names(arch) or 'none'})")
    return BACKBONES[arch](pretrain=pretrain, zero_init_residual=zero_init_residual, **(options or {}))


@functools.lru_cache(maxsize=None)
def backbone_layout(arch: str) -> Layout:
    """The ``Layout`` of ``arch`` without building its weights (built on the meta device): e.g. whether it takes
    clips (``.clip``), for the code that samples frames."""
    import torch
    with torch.device('meta'):
        return build_backbone(arch, 'scratch')[1]
