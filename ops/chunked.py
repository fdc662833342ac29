"""Clustering for videos too long to keep every frame's activations (``--chunk_frames K``).

The stem and the layers before the clustering point are the cost of using all frames (they run on every
frame). Here they run on chunks of K frames, twice:

1. without gradient, chunk by chunk, keeping only the packed sign codes of each frame (1 bit per
   activation) to compute the neighbour Hamming distances and the assignment (paper Sec. 3.3);
2. with gradient, chunk by chunk, each chunk reduced at once to its contribution to the cluster means
   under activation recomputation (``torch.utils.checkpoint``): backward re-runs one chunk at a time.

So activation memory before the clustering point grows with K, not with the number of frames.

Exactness: a temporal shift mixes neighbouring frames, so each chunk is computed with a halo of as many
frames on each side as there are shifted blocks before the clustering point, and the halo is dropped.
Outputs and gradients then equal the unchunked path whenever every BatchNorm before the clustering point
uses running statistics: in evaluation, and in training with ``freeze_early_batchnorm`` (main.py
``--freeze_early_bn``, which main.py requires with ``--chunk_frames`` in training). A BatchNorm in training
mode would normalise each chunk with the chunk's own statistics, like a smaller batch, and recomputation
would update its running statistics twice per chunk.
"""
from typing import Callable, Iterable, List, Optional

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from ops.clustering import cluster_weights, get_rule, no_distances
from ops.hamming import hamming_from_codes, sign_codes
from ops.temporal_shift import TemporalShift


def early_batchnorms(model: nn.Module) -> List[nn.Module]:
    """The BatchNorm layers of ``model`` (a ``TSN``) that run on every frame: the stem's and those of the stages
    up to the clustering point (none without clustering)."""
    if not model.early_stages():
        return []
    return [m for m in model.early_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def freeze_early_batchnorm(model: nn.Module) -> None:
    """Put ``early_batchnorms`` in eval mode (call after ``model.train()``): they normalise with their running
    statistics, which no longer change; their affine parameters still train. Chunked training is then
    exact (equals the unchunked training with the same freezing)."""
    for m in early_batchnorms(model):
        m.eval()


def shift_halo(modules: Iterable[nn.Module]) -> int:
    """Frames of context a chunk needs on each side: one per temporal shift among ``modules`` (those before
    the clustering point)."""
    return sum(isinstance(m, TemporalShift) for m in modules)


def _window(frames: torch.Tensor, lengths: Optional[torch.Tensor], start: int, stop: int, halo: int):
    """Frames [start-halo, stop+halo) clipped to the video, with lengths relative to the window."""
    t = frames.shape[1]
    lo, hi = max(0, start - halo), min(t, stop + halo)
    win_len = None if lengths is None else (lengths - lo).clamp(min=1, max=hi - lo)
    return frames[:, lo:hi], win_len, start - lo, hi - lo


Early = Callable[[torch.Tensor, int, Optional[torch.Tensor]], torch.Tensor]


def _early(early: Early, win: torch.Tensor, win_len: Optional[torch.Tensor], offset: int, k: int) -> torch.Tensor:
    """Early layers on a window (N, W, C, H, W') -> activations of its K central frames (N, K, C', H', W')."""
    n, w = win.shape[:2]
    y = early(win.reshape(n * w, *win.shape[2:]), w, win_len)
    return y.view(n, w, *y.shape[1:])[:, offset:offset + k]


def chunked_cluster(early: Early, clustering: nn.Module, x: torch.Tensor, t: int, lengths: Optional[torch.Tensor],
                    chunk: int, halo: int) -> torch.Tensor:
    """``early`` + ``clustering`` in chunks of ``chunk`` frames.

    Args:
        early: the layers before the clustering point, ``(M*W, C, H, W) frames, W, (M,) lengths or None ->
            (M*W, C', H', W')`` (``TSN.run_early``).
        clustering: a ``TemporalClustering``.
        x: (N*T, C, H, W) input frames.
        t: frames per video T.
        lengths: (N,) real frame counts or None.
        chunk: frames per chunk K.
        halo: frames of context each chunk needs on each side (``shift_halo``).

    Returns:
        (N*G, C', H', W') cluster means, as ``clustering(early(x, t, lengths), t, lengths)``.
    """
    g = clustering.num_clusters
    n = x.shape[0] // t
    frames = x.view(n, t, *x.shape[1:])
    starts = list(range(0, t, chunk))

    rule = get_rule(clustering.method)
    with torch.no_grad():
        if not rule.needs_distances:
            dist = no_distances(n, t, x.device)
        else:
            # Distances chunk by chunk, carrying only the last frame's codes across a border, so
            # that nothing of size T x D is ever held (memory stays flat in the video length).
            dists, prev = [], None
            for s in starts:
                k = min(chunk, t - s)
                win, win_len, off, _ = _window(frames, lengths, s, s + k, halo)
                y = _early(early, win, win_len, off, k)
                codes = sign_codes(y)
                if prev is not None:
                    codes = torch.cat([prev, codes], dim=1)  # the pair (s-1, s) crosses the border
                dists.append(hamming_from_codes(codes, y[0, 0].numel()))
                prev = codes[:, -1:]
            dist = torch.cat(dists, dim=1)  # (N, T-1)
            if lengths is not None:
                dist = torch.where(torch.arange(t - 1, device=x.device) < (lengths - 1)[:, None], dist, 0.0)
        assign = rule.assign(dist, g, lengths)
        clustering.last_assign = assign
        weights = cluster_weights(assign, g, lengths)  # (N, G, T)

    frame_shape = {}

    def part(win: torch.Tensor, w: torch.Tensor, win_len: Optional[torch.Tensor], off: int, k: int) -> torch.Tensor:
        y = _early(early, win, win_len, off, k)
        frame_shape['chw'] = tuple(y.shape[2:])
        return torch.bmm(w.to(y.dtype), y.reshape(n, k, -1))

    total = None
    for s in starts:
        k = min(chunk, t - s)
        win, win_len, off, _ = _window(frames, lengths, s, s + k, halo)
        w = weights[:, :, s:s + k]
        out = checkpoint(part, win, w, win_len, off, k, use_reentrant=False) if torch.is_grad_enabled() \
            else part(win, w, win_len, off, k)
        total = out if total is None else total + out
    return total.view(n * g, *frame_shape['chw'])
