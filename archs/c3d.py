"""C3D (Tran et al., "Learning Spatiotemporal Features with 3D Convolutional Networks", ICCV 2015).

Eight 3x3x3 convolutions (64, 128, 256, 256, 512, 512, 512, 512 channels), five max-pools (the first (1,2,2),
the others (2,2,2)), fc6 and fc7 of 4096, for a 16x112x112 clip (Sec. 3.3 of the paper).

Parameter names follow the common PyTorch port of the Sports-1M weights (``c3d.pickle`` of DavideA/c3d-pytorch,
also used by jfzhang95/pytorch-video-recognition): ``conv1, conv2, conv3a, conv3b, conv4a, conv4b, conv5a,
conv5b, fc6, fc7, fc8``, with ``pool5`` padded (0,1,1) so that fc6 sees 512x1x4x4 = 8192 values as Caffe's
ceil-mode pooling gave. A Sports-1M state dict therefore loads by name (fc8 dropped when the classes differ).
"""
from typing import Tuple

import torch
import torch.nn as nn

from archs.base import Layout

C3D_CLIP = (16, 112, 112)  # (T, H, W) of the paper's input; fc6's 8192 inputs assume it


def _conv(cin: int, cout: int) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=3, padding=1)


class C3D(nn.Module):
    """C3D; ``(N, 3, 16, 112, 112) -> (N, num_classes)``.

    fc6 takes 8192 values, which 16x112x112 gives (and e.g. 8x112x112 does not: an error says so).
    ``adaptive_pool=True`` makes pool5 a global average and fc6 a 512-input layer, so the network takes any
    clip of at least 8 frames and 16x16 pixels (for tiny test inputs; not the published model).
    """

    def __init__(self, num_classes: int = 487, dropout: float = 0.5, adaptive_pool: bool = False) -> None:
        super().__init__()
        self.conv1 = _conv(3, 64)
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.conv2 = _conv(64, 128)
        self.pool2 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv3a = _conv(128, 256)
        self.conv3b = _conv(256, 256)
        self.pool3 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv4a = _conv(256, 512)
        self.conv4b = _conv(512, 512)
        self.pool4 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv5a = _conv(512, 512)
        self.conv5b = _conv(512, 512)
        # padding (0,1,1): 7x7 -> 4x4 as Caffe's ceil-mode pool5 did in the original model
        self.pool5 = nn.AdaptiveAvgPool3d(1) if adaptive_pool else \
            nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))
        self.fc6 = nn.Linear(512 if adaptive_pool else 8192, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.dropout = nn.Dropout(p=dropout)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()  # fc6's input, for the Layout's head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutions and pools: ``(N, 3, T, H, W) -> (N, 512, T/16, ceil(H/32), ceil(W/32))`` (fc6's input)."""
        x = self.pool1(self.relu(self.conv1(x)))
        x = self.pool2(self.relu(self.conv2(x)))
        x = self.pool3(self.relu(self.conv3b(self.relu(self.conv3a(x)))))
        x = self.pool4(self.relu(self.conv4b(self.relu(self.conv4a(x)))))
        return self.pool5(self.relu(self.conv5b(self.relu(self.conv5a(x)))))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """fc6, fc7 (ReLU, dropout), fc8: ``(N, 512, t, h, w) -> (N, num_classes)``."""
        x = x.flatten(1)
        if x.shape[1] != self.fc6.in_features:
            raise ValueError(f"C3D fc6 expects {self.fc6.in_features} inputs (a 16x112x112 clip gives 8192), got "
                             f"{x.shape[1]}: feed 16x112x112 clips or build with adaptive_pool=True")
        x = self.dropout(self.relu(self.fc6(x)))
        x = self.dropout(self.relu(self.fc7(x)))
        return self.fc8(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_c3d(num_classes: int, adaptive_pool: bool = False, dropout: float = 0.5) -> C3D:
    """A randomly initialised C3D (no pretrained weights are downloadable from torchvision)."""
    return C3D(num_classes=num_classes, dropout=dropout, adaptive_pool=adaptive_pool)


def c3d_layout(model: C3D) -> Layout:
    """C3D's ``Layout``: five stages of convolutions ending in a pool; the head is fc6 and fc7 (4096 features).

    pool1 keeps time (1x2x2), so after stage 1 the clip still has every frame: the clustering point.
    """
    convs = [['conv1'], ['conv2'], ['conv3a', 'conv3b'], ['conv4a', 'conv4b'], ['conv5a', 'conv5b']]
    stages = [[p for c in cs for p in (c, 'relu')] + [f'pool{i + 1}'] for i, cs in enumerate(convs)]
    return Layout(stem=(), stages=stages, stage_names=[f'conv{i}' for i in range(1, 6)],
                  head=('flatten', 'fc6', 'relu', 'dropout', 'fc7', 'relu', 'dropout'), classifier='fc8',
                  feature_dim=4096, first_conv='conv1', input_size=112, clip=True,
                  input_mean=(0.485, 0.456, 0.406), input_std=(0.229, 0.224, 0.225))


def build(arch: str = 'c3d', pretrain: str = 'scratch', zero_init_residual: bool = False) -> Tuple[C3D, Layout]:
    """The registry's builder: C3D as published (16x112x112 clips), from scratch (Sports-1M weights load with
    ``--tune_from``: their names are this module's)."""
    if pretrain != 'scratch':
        raise ValueError(f"c3d: --pretrain {pretrain!r} is not available; train with --pretrain scratch, or load the "
                         f"Sports-1M port (c3d.pickle) with --tune_from")
    if zero_init_residual:
        raise ValueError("--zero_init_residual: C3D has no residual blocks")
    model = C3D()
    return model, c3d_layout(model)
