"""Temporal Shift Module (Lin et al., ICCV 2019), written with ``torch.cat`` so that it traces and exports.

A clip of T frames is stored as a (N*T, C, H, W) batch. The shift moves 1/``shift_div`` of the channels one
frame back in time (frame t sees frame t+1), another 1/``shift_div`` one frame forward (frame t sees frame
t-1), fills the ends with zeros and leaves the other channels untouched (TSM paper, Fig. 1b).

The temporal length is a property of the stage a block sits in, not of the block: before the clustering
point it is the number of input frames F, after it the number of clusters G. ``TSN`` sets ``n_segment`` (and,
for padded batches, ``lengths``) on each shift before running a stage, see ``set_temporal_context``.
"""
from typing import Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def temporal_shift(x: torch.Tensor, n_segment: int, fold_div: int = 8,
                   lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Shift part of the channels along time.

    Args:
        x: (N*T, C, H, W) activations of N clips of T = ``n_segment`` frames.
        n_segment: frames per clip.
        fold_div: 1/fold_div of the channels go back, 1/fold_div forward.
        lengths: optional (N,) real frame counts; a frame past a clip's length is padding and shifts
            nothing into the real frames (the last real frame receives zeros, as at the clip's end).

    Returns:
        (N*T, C, H, W) shifted activations.
    """
    nt, c, h, w = x.shape
    x = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    back, fwd, rest = x[:, :, :fold], x[:, :, fold:2 * fold], x[:, :, 2 * fold:]
    # Frame t takes frame t+1's first fold (zeros at the end) ...
    back = torch.cat([back[:, 1:], torch.zeros_like(back[:, :1])], dim=1)
    if lengths is not None:
        has_next = torch.arange(1, n_segment + 1, device=x.device)[None] < lengths[:, None]
        back = back * has_next[:, :, None, None, None].to(back.dtype)
    # ... and frame t-1's second fold (zeros at the start).
    fwd = torch.cat([torch.zeros_like(fwd[:, :1]), fwd[:, :-1]], dim=1)
    return torch.cat([back, fwd, rest], dim=2).view(nt, c, h, w)


class TemporalShift(nn.Module):
    """Shift, then run ``net`` (TSM's wrapper; ``net`` keeps its parameter names under ``.net``)."""

    def __init__(self, net: nn.Module, n_segment: int = 8, n_div: int = 8) -> None:
        super().__init__()
        self.net = net
        self.n_segment = n_segment
        self.fold_div = n_div
        self.lengths: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(temporal_shift(x, self.n_segment, self.fold_div, self.lengths))

    def extra_repr(self) -> str:
        return f"n_segment={self.n_segment}, fold_div={self.fold_div}"


class TemporalPool(nn.Module):
    """TSM's temporal pooling: max-pool time by 2 (kernel 3, stride 2, padding 1), then run ``net``.

    As in TSM it wraps ``layer2``, so ``layer2``'s shifts already see half the frames.
    """

    def __init__(self, net: nn.Module, n_segment: int) -> None:
        super().__init__()
        self.net = net
        self.n_segment = n_segment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        x = x.view(nt // self.n_segment, self.n_segment, c, h, w).transpose(1, 2)
        x = F.max_pool3d(x, kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
        return self.net(x.transpose(1, 2).reshape(-1, c, h, w))


def make_temporal_shift(net: nn.Module, n_segment: int, n_div: int = 8, place: str = 'blockres',
                        temporal_pool: bool = False) -> None:
    """Insert temporal shifts into a torchvision ResNet in place (TSM's ``make_temporal_shift``).

    ``blockres`` shifts the residual branch of every block (wraps ``conv1``: parameter names become
    ``layerK.I.conv1.net.weight`` as in TSM); ``block`` shifts each block's input (wraps the block).
    With ``temporal_pool`` time is halved before ``layer2``, as in TSM; in ResNet-101 (and deeper) only every
    second block is shifted, as in TSM.
    """
    if place not in ('blockres', 'block'):
        raise NotImplementedError(f"shift_place {place!r}: expected 'blockres' or 'block'")
    # TSM shifts every second residual block of very deep nets (ResNet-101: 23 blocks in layer3).
    n_round = 2 if place == 'blockres' and len(net.layer3) >= 23 else 1
    late = n_segment // 2 if temporal_pool else n_segment
    for name, n in (('layer1', n_segment), ('layer2', late), ('layer3', late), ('layer4', late)):
        layer = getattr(net, name)
        for i, block in enumerate(layer):
            if place == 'blockres':
                if i % n_round == 0:
                    block.conv1 = TemporalShift(block.conv1, n_segment=n, n_div=n_div)
            else:
                layer[i] = TemporalShift(block, n_segment=n, n_div=n_div)
    if temporal_pool:
        net.layer2 = TemporalPool(net.layer2, n_segment)


def set_temporal_context(modules: Iterable[nn.Module], n_segment: int,
                         lengths: Optional[torch.Tensor] = None) -> None:
    """Tell every shift / pool in ``modules`` the temporal length (and padding) of the tensor it receives.

    Shifts inside a ``TemporalPool`` see the pooled length, ``n_segment // 2``.
    """
    modules = list(modules)
    pooled = {id(m) for p in modules if isinstance(p, TemporalPool) for m in p.net.modules()}
    for m in modules:
        if isinstance(m, TemporalPool):
            m.n_segment = n_segment
        elif isinstance(m, TemporalShift):
            m.n_segment = n_segment // 2 if id(m) in pooled else n_segment
            m.lengths = None if id(m) in pooled else lengths
