"""Temporal Shift Module (Lin et al., ICCV 2019), written with ``torch.cat`` so that it traces and exports.

A clip of T frames is stored as a (N*T, C, H, W) batch. The shift moves 1/``shift_div`` of the channels one
frame back in time (frame t sees frame t+1), another 1/``shift_div`` one frame forward (frame t sees frame
t-1), fills the ends with zeros and leaves the other channels untouched (TSM paper, Fig. 1b).

The temporal length is a property of the stage a block sits in, not of the block: before the clustering
point it is the number of input frames F, after it the number of clusters G. ``TSN`` sets ``n_segment`` (and,
for padded batches, ``lengths``) on each shift before running a stage, see ``set_temporal_context``.

Online TSM (TSM paper, Sec. 3.3 "uni-directional" shift; ``--online``): only 1/``shift_div`` of the channels
move, one frame forward in time (frame t sees frame t-1; zeros at t = 0), so no frame needs a later one and a
model runs frame by frame: ``start_stream`` makes each shift keep the moved channels of the frame before in a
cache (``TemporalShift.cache``), which equals the offline uni-directional shift over the same frames.
"""
from typing import Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def temporal_shift(x: torch.Tensor, n_segment: int, fold_div: int = 8,
                   lengths: Optional[torch.Tensor] = None, online: bool = False) -> torch.Tensor:
    """Shift part of the channels along time.

    Args:
        x: (N*T, C, H, W) activations of N clips of T = ``n_segment`` frames.
        n_segment: frames per clip.
        fold_div: 1/fold_div of the channels go back, 1/fold_div forward.
        lengths: optional (N,) real frame counts; a frame past a clip's length is padding and shifts
            nothing into the real frames (the last real frame receives zeros, as at the clip's end).
        online: uni-directional: only the first fold moves, one frame forward (frame t takes frame t-1's);
            padding follows the real frames, so it never reaches them.

    Returns:
        (N*T, C, H, W) shifted activations.
    """
    nt, c, h, w = x.shape
    x = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    if online:
        past = torch.cat([torch.zeros_like(x[:, :1, :fold]), x[:, :-1, :fold]], dim=1)
        return torch.cat([past, x[:, :, fold:]], dim=2).view(nt, c, h, w)
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
    """Shift, then run ``net`` (TSM's wrapper; ``net`` keeps its parameter names under ``.net``).

    ``online``: the uni-directional shift. While streaming (``start_stream``) each call takes the frames of
    one time step ``(N, C, H, W)`` (N parallel streams) and ``cache`` holds the previous step's first fold.
    """

    def __init__(self, net: nn.Module, n_segment: int = 8, n_div: int = 8, online: bool = False) -> None:
        super().__init__()
        self.net = net
        self.n_segment = n_segment
        self.fold_div = n_div
        self.online = online
        self.lengths: Optional[torch.Tensor] = None
        self.streaming = False
        self.cache: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.streaming:
            fold = x.shape[1] // self.fold_div
            past = torch.zeros_like(x[:, :fold]) if self.cache is None else self.cache
            self.cache = x[:, :fold].detach()
            return self.net(torch.cat([past, x[:, fold:]], dim=1))
        return self.net(temporal_shift(x, self.n_segment, self.fold_div, self.lengths, self.online))

    def extra_repr(self) -> str:
        return f"n_segment={self.n_segment}, fold_div={self.fold_div}" + (", online" if self.online else "")


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
                        temporal_pool: bool = False, online: bool = False) -> None:
    """Insert temporal shifts into a torchvision ResNet in place (TSM's ``make_temporal_shift``).

    ``blockres`` shifts the residual branch of every block (wraps ``conv1``: parameter names become
    ``layerK.I.conv1.net.weight`` as in TSM); ``block`` shifts each block's input (wraps the block).
    With ``temporal_pool`` time is halved before ``layer2``, as in TSM; in ResNet-101 (and deeper) only every
    second block is shifted, as in TSM. ``online``: uni-directional shifts (no temporal pool).
    """
    if online and temporal_pool:
        raise ValueError("online (uni-directional) shift cannot be combined with temporal_pool")
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
                    block.conv1 = TemporalShift(block.conv1, n_segment=n, n_div=n_div, online=online)
            else:
                layer[i] = TemporalShift(block, n_segment=n, n_div=n_div, online=online)
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


def set_online(modules: Iterable[nn.Module], online: bool = True) -> int:
    """Make every ``TemporalShift`` in ``modules`` uni-directional (``--online``); the number of shifts set."""
    shifts = [m for m in modules if isinstance(m, TemporalShift)]
    for m in shifts:
        m.online = online
    return len(shifts)


def start_stream(modules: Iterable[nn.Module]) -> None:
    """Run every (online) ``TemporalShift`` in ``modules`` one time step per call, with empty caches."""
    for m in modules:
        if isinstance(m, TemporalShift):
            if not m.online:
                raise ValueError("streaming needs the uni-directional shift of an --online model: a bi-directional "
                                 "shift takes channels from the next frame, which a stream has not seen yet")
            m.streaming, m.cache = True, None
        elif isinstance(m, TemporalPool):
            raise ValueError("a temporal pool needs whole clips: it cannot stream")


def stop_stream(modules: Iterable[nn.Module]) -> None:
    """Back to whole clips; the caches are dropped."""
    for m in modules:
        if isinstance(m, TemporalShift):
            m.streaming, m.cache = False, None
