"""Frame positions of a sample: which frames of a video a clip takes (docs/DESIGN.md §1, §2).

  * sampling (TSN/TSM): ``train_indices`` (a random frame per segment), ``val_indices`` (segment
    centres; TSM's twice sampling and multi-clip), ``dense_indices`` (TSM/I3D's 64-frame window);
  * clip sampling (3D CNNs, T x tau of PySlowFast and mmaction2): ``clip_indices``, T consecutive frames at a
    stride tau: one at a random place (training), the centre clip, or clips spread evenly (testing);
  * clustering (``frames=F`` or ``'all'``): ``cluster_indices``, every frame of the video (evenly
    sampled down to F when longer, padded with the last frame up to F when shorter).

All return 0-based positions into a video of ``num_frames`` frames, as an int64 array. ``rng`` is a
numpy RandomState or the np.random module (seeded per DataLoader worker by torch, or per sample
inside ``seeded_random``).
"""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

FramesArg = int | str | None  # clustering mode's F: None (sampling), a positive int or 'all'


def _segment_points(span: int, count: int, frac: float = 0.5) -> np.ndarray:
    """Position ``int(tick * (k + frac))``, tick = span / count, in each of ``count`` segments of ``[0, span)``.

    With span < count positions repeat evenly (e.g. span 3, count 8 -> 0 0 0 1 1 2 2 2).
    """
    tick = span / count
    return np.minimum((tick * (np.arange(count) + frac)).astype(np.int64), span - 1)


def train_indices(num_frames: int, num_segments: int, new_length: int = 1, rng=None) -> np.ndarray:
    """TSN training sampling: one random position in each of ``num_segments`` equal segments.

    A video with fewer usable positions than segments repeats its frames evenly (TSM takes
    frame 0 ``num_segments`` times there, which keeps nothing of the video).
    """
    rng = rng if rng is not None else np.random
    span = max(1, num_frames - new_length + 1)
    avg = span // num_segments
    if avg == 0:
        return _segment_points(span, num_segments)
    return np.arange(num_segments) * avg + rng.randint(avg, size=num_segments)


def val_indices(num_frames: int, num_segments: int, new_length: int = 1, twice_sample: bool = False,
                num_clips: int = 1) -> np.ndarray:
    """Evaluation sampling: ``num_clips`` clips of ``num_segments`` positions, clip after clip.

    One clip (validation, TSN): the centre of each segment. Clip k takes the point at fraction
    ``(k + 0.5) / num_clips`` of each segment. ``twice_sample`` (TSM): centres, then segment starts.
    """
    span = max(1, num_frames - new_length + 1)
    fracs = [0.5, 0.0] if twice_sample else [(k + 0.5) / num_clips for k in range(num_clips)]
    return np.concatenate([_segment_points(span, num_segments, f) for f in fracs])


def dense_indices(num_frames: int, num_segments: int, mode: str, rng=None, num_clips: int = 1) -> np.ndarray:
    """TSM/I3D dense sampling: ``num_segments`` positions at stride ``64 // num_segments`` in a 64-frame window.

    ``mode``: 'train' random window start (as TSM), 'val' the middle start (TSM draws a random
    one), 'test' ``num_clips`` starts spread evenly (TSM uses 10). Positions wrap around (modulo
    ``num_frames``) in videos shorter than the window, as TSM.
    """
    rng = rng if rng is not None else np.random
    sample_pos = max(1, 1 + num_frames - 64)
    stride = 64 // num_segments
    if mode == 'train':
        starts = [0 if sample_pos == 1 else int(rng.randint(0, sample_pos - 1))]
    elif mode == 'val':
        starts = [(sample_pos - 1) // 2]
    else:
        starts = np.linspace(0, sample_pos - 1, num=num_clips, dtype=int).tolist()
    return np.concatenate([(np.arange(num_segments) * stride + s) % num_frames for s in starts])


def clip_indices(num_frames: int, clip_len: int, sample_rate: int = 1, mode: str = 'train',
                 num_clips: int = 1, rng=None) -> np.ndarray:
    """Clip sampling for clip backbones: ``num_clips`` clips of ``clip_len`` frames ``s, s + tau, ..., s + (T-1) tau``
    (tau = ``sample_rate``), clip after clip.

    A clip spans ``w = (T - 1) * tau + 1`` frames; its start ``s`` lies in ``[0, num_frames - w]``:

    * ``mode='train'``: one clip, ``s`` uniform over the starts (``rng``, default ``np.random``);
    * ``mode='val'``: one clip, the centre one (``s = (num_frames - w) // 2``);
    * ``mode='test'``: ``num_clips`` starts spread evenly from the first to the last start
      (``np.linspace``, rounded down), the centre clip for ``num_clips=1``, as PySlowFast's
      ``get_start_end_idx``.

    A video shorter than ``w`` takes ``s = 0`` and repeats its last frame for the positions past its end (as
    clustering mode pads and as a ``new_length`` stack ends), not looping back to frame 0.
    """
    if clip_len < 1 or sample_rate < 1 or num_clips < 1:
        raise ValueError(f"clip_indices: clip_len, sample_rate and num_clips must be >= 1, got "
                         f"{clip_len}, {sample_rate}, {num_clips}")
    if mode not in ('train', 'val', 'test'):
        raise ValueError(f"clip_indices: mode must be 'train', 'val' or 'test', got {mode!r}")
    if mode != 'test' and num_clips != 1:
        raise ValueError(f"clip_indices: {mode} takes one clip, got num_clips={num_clips}")
    last_start = max(0, num_frames - ((clip_len - 1) * sample_rate + 1))
    if mode == 'train':
        rng = rng if rng is not None else np.random
        starts = np.array([rng.randint(last_start + 1)])
    elif num_clips == 1:
        starts = np.array([last_start // 2])
    else:
        starts = np.linspace(0, last_start, num_clips).astype(np.int64)
    offsets = np.arange(clip_len) * sample_rate
    return np.minimum(starts[:, None] + offsets[None, :], num_frames - 1).reshape(-1).astype(np.int64)


def cluster_indices(num_frames: int, frames: int | str, random_shift: bool, rng=None) -> tuple[np.ndarray, int]:
    """Clustering mode positions and the number of real (non-padded) frames.

    ``frames='all'`` or ``num_frames <= frames``: every frame in order, then (integer ``frames``)
    the last frame repeated up to ``frames``. Longer videos are sampled evenly to ``frames``:
    a random frame in each of ``frames`` equal segments when ``random_shift``, else the segment
    centres; either way strictly increasing.
    """
    if frames == 'all' or num_frames <= frames:
        pad = 0 if frames == 'all' else frames - num_frames
        return np.concatenate([np.arange(num_frames), np.full(pad, num_frames - 1)]).astype(np.int64), num_frames
    if not random_shift:
        return _segment_points(num_frames, frames), frames
    rng = rng if rng is not None else np.random
    edges = np.arange(frames + 1) * num_frames // frames  # widths >= 1 since num_frames > frames
    return (edges[:-1] + rng.randint(0, edges[1:] - edges[:-1])).astype(np.int64), frames


def check_frames(frames: FramesArg) -> FramesArg:
    """``frames`` checked: None, a positive int (digits accepted, as from the command line) or 'all'."""
    if frames is None or frames == 'all':
        return frames
    if isinstance(frames, str) and frames.isdigit():
        frames = int(frames)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames <= 0:
        raise ValueError(f"frames must be None, a positive integer or 'all', got {frames!r}")
    return frames


@contextmanager
def seeded_random(key: Sequence[int]) -> Iterator[None]:
    """Python's, numpy's and torch's global generators seeded from ``key`` (non-negative ints) inside the block,
    and restored after it, so draws inside depend on ``key`` alone and draws outside are not shifted."""
    # torch's CPU generator through its own methods: torch.manual_seed and torch.set_rng_state go through a
    # dynamo-disabling wrapper that costs 0.15 ms a call, twice per video
    states = random.getstate(), np.random.get_state(), torch.default_generator.get_state()
    seed = int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.default_generator.set_state(states[2])
