"""Backbones. TSN builds torchvision ResNets through ``archs.resnet.build_resnet``."""
