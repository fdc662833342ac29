"""Temporal Shift Module (Lin et al., ICCV 2019), written with ``torch.cat`` so that it traces and exports.

A clip of T frames is stored as a (N*T, C, H, W) batch. The shift moves 1/``shift_div`` of the channels one
frame back in time (frame t sees frame t+1), another 1/``shift_div`` one frame forward (frame t sees frame
t-1), fills the ends with zeros and leaves the other channels untouched (TSM paper, Fig. 1b).

The temporal length is a property of the stage a block sits in, not of the block: before the clustering
point it is the number of input frames F, after it the number of clusters G. ``TSN`` runs each stage inside
``temporal_context(t, lengths)``, which every shift reads at its call; a shift called outside any context uses its
own ``n_segment`` (TSM's behaviour). ``insert_temporal_shift`` places the shifts where a backbone's ``Layout``
says (``archs/``).

Online TSM (TSM paper, Sec. 3.3 "uni-directional" shift; ``--online``): only 1/``shift_div`` of the channels
move, one frame forward in time (frame t sees frame t-1; zeros at t = 0), so no frame needs a later one and a
model runs frame by frame: ``start_stream`` makes each shift keep the moved channels of the frame before in a
cache (``TemporalShift.cache``), which equals the offline uni-directional shift over the same frames.
"""
import contextlib
import threading
from typing import Iterable, Iterator, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from archs.base import Layout, replace_module

_CONTEXT = threading.local()  # per thread: a stack of (n_segment, lengths)


@contextlib.contextmanager
def temporal_context(n_segment: int, lengths: Optional[torch.Tensor] = None) -> Iterator[None]:
    """Inside the block, every ``TemporalShift`` and ``TemporalPool`` takes clips of ``n_segment`` frames
    (``lengths``: optional (N,) real frame counts of a padded batch)."""
    stack = _CONTEXT.__dict__.setdefault('stack', [])
    stack.append((n_segment, lengths))
    try:
        yield
    finally:
        stack.pop()


def current_context(default: int) -> Tuple[int, Optional[torch.Tensor]]:
    """The innermost ``temporal_context``'s (n_segment, lengths), or (``default``, None) outside any."""
    stack = getattr(_CONTEXT, 'stack', None)
    return stack[-1] if stack else (default, None)


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
        self.n_segment = n_segment  # used outside a temporal_context
        self.fold_div = n_div
        self.online = online
        self.streaming = False
        self.cache: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.streaming:
            fold = x.shape[1] // self.fold_div
            past = torch.zeros_like(x[:, :fold]) if self.cache is None else self.cache
            self.cache = x[:, :fold].detach()
            return self.net(torch.cat([past, x[:, fold:]], dim=1))
        n_segment, lengths = current_context(self.n_segment)
        return self.net(temporal_shift(x, n_segment, self.fold_div, lengths, self.online))

    def extra_repr(self) -> str:
        return f"n_segment={self.n_segment}, fold_div={self.fold_div}" + (", online" if self.online else "")


class TemporalPool(nn.Module):
    """TSM's temporal pooling: max-pool time by 2 (kernel 3, stride 2, padding 1), then run ``net``.

    As in TSM it wraps the second stage (``layer2``), whose shifts see half the frames: it runs ``net`` inside
    a ``temporal_context`` of ``n_segment // 2`` (without padding lengths).
    """

    def __init__(self, net: nn.Module, n_segment: int) -> None:
        super().__init__()
        self.net = net
        self.n_segment = n_segment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        t, _ = current_context(self.n_segment)
        x = x.view(nt // t, t, c, h, w).transpose(1, 2)
        x = F.max_pool3d(x, kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))
        with temporal_context(x.shape[2]):
            return self.net(x.transpose(1, 2).reshape(-1, c, h, w))


def insert_temporal_shift(net: nn.Module, layout: Layout, n_segment: int, n_div: int = 8,
                          place: str = 'blockres', temporal_pool: bool = False, online: bool = False) -> int:
    """Wrap the modules ``layout.shift_sites[place]`` of ``net`` in ``TemporalShift`` (TSM's ``make_temporal_shift``).

    With ``temporal_pool`` the second stage is wrapped in a ``TemporalPool`` (TSM: time halved before ``layer2``);
    that needs a second stage of one module. ``online``: uni-directional shifts. Returns the number of shifts.

    Raises:
        ValueError: a placement the backbone does not offer, or a temporal pool it cannot take.
    """
    if online and temporal_pool:
        raise ValueError("online (uni-directional) shift cannot be combined with temporal_pool")
    if place not in layout.shift_sites:
        raise ValueError(f"shift_place {place!r}: this backbone offers {sorted(layout.shift_sites)}")
    late = n_segment // 2 if temporal_pool else n_segment
    count = 0
    for stage, paths in enumerate(layout.shift_sites[place]):
        for path in paths:
            shift = TemporalShift(net.get_submodule(path), n_segment=n_segment if stage == 0 else late,
                                  n_div=n_div, online=online)
            replace_module(net, path, shift)
            count += 1
    if temporal_pool:
        if len(layout.stages[1]) != 1:
            raise ValueError(f"temporal_pool wraps the second stage, which is one module in TSM's ResNets; here it "
                             f"is {len(layout.stages[1])} ({layout.stage_names[1]})")
        path = layout.stages[1][0]
        replace_module(net, path, TemporalPool(net.get_submodule(path), n_segment))
    return count


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
