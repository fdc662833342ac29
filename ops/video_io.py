"""Decoding video files with PyAV: exact frame counts, chosen frames, or every frame.

Frames are counted and indexed by decoding, never from container metadata: a `.mkv`/`.webm`
reports no frame count at all and an `.avi` may report a wrong one, while the list files
(`path num_frames label`, docs/DESIGN.md §4) must hold the number of frames a loader can read.
Every PyAV error is re-raised as `VideoDecodeError` naming the file, so a caller can report the
video and move on.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import av
from PIL import Image

__all__ = ['VideoDecodeError', 'count_frames', 'read_frames', 'iter_frames']


class VideoDecodeError(ValueError):
    """A video file that cannot be opened or decoded, or a frame it does not have."""


@contextmanager
def _video_stream(path: str):
    """Open `path` and yield `(container, first video stream)`; PyAV errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: no such video file')
    try:
        container = av.open(path, metadata_errors='ignore')
    except av.error.FFmpegError as e:
        raise VideoDecodeError(f'{path}: cannot open: {_reason(e)}') from e
    try:
        if not container.streams.video:
            raise VideoDecodeError(f'{path}: no video stream in the file')
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'  # frame + slice threads; frames still come out in order
        yield container, stream
    finally:
        container.close()


def _reason(e: Exception) -> str:
    """PyAV's message without the errno prefix and the repeated file name."""
    msg = getattr(e, 'strerror', None) or str(e)
    return f'{type(e).__name__}: {msg}'


def _decode(path: str) -> Iterator[av.VideoFrame]:
    """Yield the decoded frames of `path` in presentation order; errors name the file and frame."""
    with _video_stream(path) as (container, stream):
        n = 0
        try:
            for frame in container.decode(stream):
                yield frame
                n += 1
        except av.error.FFmpegError as e:
            raise VideoDecodeError(f'{path}: decoding failed after {n} frames: {_reason(e)}') from e
        if n == 0:
            raise VideoDecodeError(f'{path}: the video stream holds no decodable frame')


def count_frames(path: str) -> int:
    """Number of frames of the first video stream, counted by decoding the whole stream.

    Raises:
        VideoDecodeError: the file cannot be opened or decoded, or holds no frame.
        FileNotFoundError: `path` is not a file.
    """
    return sum(1 for _ in _decode(path))


def read_frames(path: str, indices: Sequence[int]) -> list[Image.Image]:
    """The frames at 0-based `indices`, as RGB PIL images, in the order asked.

    The video is decoded once, up to the largest index; only the requested frames are converted
    to RGB. Indices may repeat (each repeat is its own copy).

    Raises:
        VideoDecodeError: an index >= the number of frames, or the file cannot be decoded.
        ValueError: a negative index.
    """
    indices = [int(i) for i in indices]
    if not indices:
        return []
    if min(indices) < 0:
        raise ValueError(f'{path}: frame indices are 0-based and non-negative, got {min(indices)}')
    wanted = set(indices)
    last = max(indices)
    found: dict[int, Image.Image] = {}
    n = 0
    frames = _decode(path)
    try:
        for n, frame in enumerate(frames, start=1):
            if n - 1 in wanted:
                found[n - 1] = frame.to_image()
            if n - 1 == last:
                break
    finally:
        frames.close()  # stops decoding early and closes the file
    if last not in found:
        raise VideoDecodeError(f'{path}: frame index {last} requested but the video has only {n} frames')
    out, used = [], set()
    for i in indices:
        out.append(found[i].copy() if i in used else found[i])
        used.add(i)
    return out


def iter_frames(path: str, fps: float | None = None) -> Iterator[Image.Image]:
    """Yield the frames of `path` as RGB PIL images.

    Args:
        path: video file.
        fps: None yields every decoded frame, no more, no fewer. Otherwise the video is resampled
            to `fps` frames per second by timestamps: output frame k shows the decoded frame on
            screen at time k / fps (frames are dropped or repeated as needed), for every k with
            k / fps before the end of the last frame.

    Raises:
        VideoDecodeError: the file cannot be opened or decoded, or holds no frame.
    """
    if fps is None:
        for frame in _decode(path):
            yield frame.to_image()
        return
    if fps <= 0:
        raise ValueError(f'fps must be positive, got {fps}')
    step = 1.0 / fps
    eps = 1e-6 * step  # timestamps are exact fractions; k * step is not
    k = 0  # next output tick, at time k * step after the first frame
    prev, prev_t, t0, n = None, 0.0, 0.0, 0
    for n, frame in enumerate(_decode(path), start=1):
        t = _frame_time(frame, n - 1)
        if prev is None:
            t0 = t
        t -= t0
        image = None
        while prev is not None and k * step < t - eps:  # ticks in [prev_t, t) show `prev`
            if image is None:
                image = prev.to_image()
            yield image.copy()
            k += 1
        prev, prev_t = frame, t
    # The last frame stays on screen for its own duration, else for the mean frame interval.
    last_duration = _duration(prev) or (prev_t / (n - 1) if n > 1 else step)
    image = None
    while k * step < prev_t + last_duration - eps:
        if image is None:
            image = prev.to_image()
        yield image.copy()
        k += 1


def _frame_time(frame: av.VideoFrame, index: int) -> float:
    """Presentation time in seconds; frames without a timestamp are placed by index at 25 fps."""
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    return index / 25.0


def _duration(frame: av.VideoFrame) -> float | None:
    """How long `frame` stays on screen in seconds, when the container says so."""
    duration = getattr(frame, 'duration', None)
    if duration and frame.time_base is not None:
        return float(duration * frame.time_base)
    return None
