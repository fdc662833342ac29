"""torchvision ResNets for TSN, with offline-safe pretrained weights.

``pretrain='imagenet'`` asks torchvision for its ImageNet weights. They come from torchvision's cache
(``$TORCH_HOME/hub/checkpoints``) or a download; on a machine without network and without the cached file
this fails with a message that says where to put the file or how to train without it.
"""
import torch.nn as nn
import torchvision

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
    if pretrain not in ('imagenet', 'scratch'):
        raise ValueError(f"unknown --pretrain {pretrain!r}: expected 'imagenet' or 'scratch'")
    fn_name, weights_name = RESNETS[arch]
    if pretrain == 'scratch':
        return getattr(torchvision.models, fn_name)(weights=None, zero_init_residual=zero_init_residual)
    weights = getattr(torchvision.models, weights_name).IMAGENET1K_V1
    try:
        return getattr(torchvision.models, fn_name)(weights=weights)
    except Exception as err:  # URLError, socket errors, a corrupt cache file: all mean "no weights here"
        raise RuntimeError(
            f"could not load torchvision's ImageNet weights for {arch} ({type(err).__name__}: {err}). "
            f"Without network, put the file {weights.url.rsplit('/', 1)[-1]} into "
            f"$TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints), "
            f"or start from local weights with --tune_from PATH, or train with --pretrain scratch.") from err
