"""Video data set: list file -> VideoRecord -> frame positions -> PIL frames -> transformed tensor; and collate.

``VideoDataset`` ties the steps together, each in its own module: the list (ops/video_list.py), the
positions a sample takes (ops/sampling.py: TSN/TSM sampling, or every frame in clustering mode,
docs/DESIGN.md §1, §2) and the frames' loading (ops/frames.py). ``collate_videos`` batches samples of
different lengths.

Bad input is never replaced by other data: it raises ``BadVideoError`` naming the list line and
the folder or frame file, or, with ``on_bad_video='skip'``, the sample becomes ``None`` and
``collate_videos`` drops it.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.utils.data as data
from PIL import Image

from ops.frames import FrameReader
from ops.sampling import (FramesArg, check_frames, clip_indices, cluster_indices, dense_indices, seeded_random,
                          train_indices, val_indices)
from ops.transforms import Stack, ToTorchFormatTensor
from ops.video_list import BadVideoError, VideoRecord, parse_list


class VideoDataset(data.Dataset):
    """Frames of the videos of a list file, as TSM's TSNDataSet.

    ``__getitem__`` returns ``(frames (T*C, H, W) float, label, length)`` where T positions were
    loaded (each position contributes ``new_length`` images: C = 3 * new_length for RGB,
    2 * new_length for Flow) and ``length`` counts the real, non-padded positions (= T when
    sampling). Multi-crop transforms multiply the first dimension by the number of crops.

    Args:
        root_path: data set root; list paths are relative to it unless absolute.
        list_file: the list (see ``ops.video_list.parse_list``).
        num_segments: positions per clip when sampling (``frames=None``); the clip length T with ``sample_rate``.
        new_length: consecutive frames per position (TSM: 1 for RGB, 5 for Flow).
        modality: 'RGB' (grayscale frames become 3-channel) or 'Flow' (``image_tmpl.format('x'|'y', i)``,
            the flow from frame i to i + 1: a list line of N frames gives N - 1 flow positions).
        transform: maps the list of PIL images to a tensor; None: stack to ``(T*C, H, W)`` in [0, 1].
        random_shift: training sampling; False: segment centres (validation).
        test_mode: test sampling (``num_clips``, ``twice_sample``, 10-clip dense with ``num_clips=10``).
        dense_sample, twice_sample, num_clips: TSM's options; twice and clips apply to evaluation.
        frames: None (sampling), an int F or 'all' (clustering mode, see ``ops.sampling.cluster_indices``).
        sample_rate: None: TSN segments; an int tau: clip sampling for clip backbones (3D CNNs), ``num_segments``
            consecutive frames at stride tau (``ops.sampling.clip_indices``): a random clip in training, else
            ``num_clips`` clips spread evenly (one: the centre clip).
        num_class: labels must lie in ``[0, num_class)``.
        video_source: 'frames' (a folder of images per video) or 'video' (files read by ops.video_io).
        on_bad_video: 'error' raises ``BadVideoError``; 'skip' returns None for that video and warns.
        decode_size: short side the transform needs; JPEGs of twice that or more decode at
            reduced size (``transforms.train_decode_size(img_size)`` for training, ``scale_size``
            for evaluation). Only for transforms that rescale first (multi-scale crop, GroupScale);
            None (default): full size.
        resize_short: resize each frame's short side to this at load, on the decoded array
            (``ops.frames.load_image``): for transforms that begin with ``GroupScale(resize_short)``, which then
            finds the frames at their size (evaluation: ``scale_size``). Ignored for video files, whose
            frames the transform's ``GroupScale`` resizes.

    ``num_skipped`` counts skipped samples in this process only (with ``-j 0`` all of them; each
    DataLoader worker counts in its own copy): count them per batch with
    ``collate_videos(..., return_skipped=True)``, which sees the Nones.
    """

    def __init__(self, root_path: str, list_file: str, num_segments: int = 3, new_length: int = 1,
                 modality: str = 'RGB', image_tmpl: str = 'img_{:05d}.jpg', start_index: int = 1,
                 transform=None, random_shift: bool = True, test_mode: bool = False,
                 dense_sample: bool = False, twice_sample: bool = False, num_clips: int = 1,
                 frames: FramesArg = None, num_class: int | None = None, video_source: str = 'frames',
                 on_bad_video: str = 'error', decode_size: int | None = None, resize_short: int | None = None,
                 sample_rate: int | None = None):
        self.root_path, self.list_file = root_path, list_file
        self.num_segments, self.new_length, self.modality = num_segments, new_length, modality
        self.image_tmpl, self.start_index, self.transform = image_tmpl, start_index, transform
        self.random_shift, self.test_mode = random_shift, test_mode
        self.dense_sample, self.twice_sample, self.num_clips = dense_sample, twice_sample, num_clips
        self.frames = check_frames(frames)
        self.sample_rate = sample_rate
        self.video_source, self.on_bad_video, self.decode_size = video_source, on_bad_video, decode_size
        self.resize_short = resize_short
        self.reader = FrameReader(modality, image_tmpl, start_index, video_source, decode_size, resize_short)
        self._check_options()
        self.video_list = parse_list(list_file, root_path, num_class, video_source)
        self._warned: set[str] = set()
        self.num_skipped = 0  # per process: DataLoader workers count in their own copies
        self.sample_seed: tuple[int, ...] | None = None
        if video_source == 'frames':
            self._check_counts()

    def set_sample_seed(self, key: Sequence[int] | None) -> None:
        """Draw each sample's random choices (positions, crops, flips) from ``(*key, index)`` alone (e.g. key =
        (seed, epoch)), not from the process's generators: a sample is then the same whichever worker loads
        it and whatever was drawn before, and a run resumed mid-epoch loads the batches of the uninterrupted
        run. None: draw from the global generators (torch seeds them per DataLoader worker)."""
        self.sample_seed = None if key is None else tuple(int(k) for k in key)

    def _check_counts(self) -> None:
        """Warn once if list frame counts are below the frames on disk (the rest would be silently ignored):
        one stat per video, for the frame just past the listed count."""
        low = []
        for r in self.video_list:
            if r.num_frames is None:
                continue
            name = self.reader.file_name(r.num_frames + self.start_index)
            if os.path.exists(os.path.join(r.path, name)):
                low.append((r, name))
        if low:
            r, name = low[0]
            warnings.warn(f'{r.where}: the list says {r.num_frames} frames but {os.path.join(r.path, name)} exists; '
                          f'{len(low)} video(s) in {self.list_file} list fewer frames than their folder holds, '
                          f'and the frames past the count are never used', RuntimeWarning)

    def _check_options(self) -> None:
        """Reject settings that would be ignored or cannot work (no flag silently does nothing)."""
        def fail(msg: str):
            raise ValueError(f'VideoDataset({self.list_file}): {msg}')
        for name, allowed in (('modality', ('RGB', 'Flow')), ('video_source', ('frames', 'video')),
                              ('on_bad_video', ('error', 'skip'))):
            if getattr(self, name) not in allowed:
                fail(f'{name} must be one of {allowed}, got {getattr(self, name)!r}')
        if self.modality == 'Flow' and self.video_source == 'video':
            fail('Flow needs flow frame images; video files hold RGB only')
        if self.num_segments < 1 or self.new_length < 1 or self.num_clips < 1:
            fail('num_segments, new_length and num_clips must be >= 1')
        if self.dense_sample and self.num_segments > 64:
            fail('dense sampling takes at most 64 segments (a 64-frame window)')
        evaluating = self.test_mode or not self.random_shift
        if (self.twice_sample or self.num_clips > 1) and not evaluating:
            fail('twice_sample and num_clips apply to evaluation (random_shift=False or test_mode)')
        if self.twice_sample and (self.num_clips > 1 or self.dense_sample):
            fail('twice_sample takes no num_clips > 1 and no dense_sample')
        if self.frames is not None and (self.dense_sample or self.twice_sample or self.num_clips > 1):
            fail('frames (clustering mode) takes every frame: no dense_sample, twice_sample or num_clips')
        if self.sample_rate is not None:
            if self.sample_rate < 1:
                fail(f'sample_rate must be >= 1, got {self.sample_rate}')
            if self.frames is not None or self.dense_sample or self.twice_sample:
                fail('sample_rate (clip sampling) takes no frames (clustering mode), dense_sample or twice_sample')
        try:
            name = self.reader.file_name(0)
        except (IndexError, ValueError, KeyError) as err:
            fail(f'image_tmpl {self.image_tmpl!r} does not fit {self.modality}: {err}')
        if self.modality == 'Flow' and name == self.image_tmpl.format('y', 0):
            fail(f"Flow image_tmpl {self.image_tmpl!r} needs a field for 'x'/'y', e.g. 'flow_{{}}_{{:05d}}.jpg'")

    def __len__(self) -> int:
        return len(self.video_list)

    def __getitem__(self, index: int):
        """``(frames (T*C, H, W), label, length)``, or None for a skipped bad video."""
        if self.sample_seed is None:
            return self._get(index)
        with seeded_random((*self.sample_seed, index)):
            return self._get(index)

    def _get(self, index: int):
        record = self.video_list[index]
        try:
            images, length = self._load_sample(record)
            if self.transform is None:
                return ToTorchFormatTensor()(Stack()(images)), record.label, length
            try:
                return self.transform(images), record.label, length
            except ValueError as err:  # the transform's checks of the frames (sizes, crop)
                raise BadVideoError(f'{record.path} ({record.where}): {err}') from err
        except BadVideoError as err:
            if self.on_bad_video == 'error':
                raise
            self._skip(record, err)
            return None

    def _skip(self, record: VideoRecord, err: BadVideoError) -> None:
        self.num_skipped += 1
        if record.where not in self._warned:  # once per video and process (each worker has its own set)
            self._warned.add(record.where)
            warnings.warn(f'skipping bad video {record.path} ({record.where}): {err}', RuntimeWarning)

    def _positions(self, num_frames: int) -> tuple[np.ndarray, int]:
        """Positions of the sample and the number of real ones."""
        if self.frames is not None:
            return cluster_indices(num_frames, self.frames, self.random_shift and not self.test_mode)
        training = self.random_shift and not self.test_mode
        if self.sample_rate is not None:
            idx = clip_indices(num_frames, self.num_segments, self.sample_rate, 'train' if training else 'test',
                               num_clips=1 if training else self.num_clips)
        elif self.dense_sample:
            mode = 'train' if training else ('test' if self.test_mode or self.num_clips > 1 else 'val')
            idx = dense_indices(num_frames, self.num_segments, mode, num_clips=self.num_clips)
        elif self.test_mode or not self.random_shift:
            idx = val_indices(num_frames, self.num_segments, self.new_length, self.twice_sample, self.num_clips)
        else:
            idx = train_indices(num_frames, self.num_segments, self.new_length)
        return idx, len(idx)

    def _load_sample(self, record: VideoRecord) -> tuple[list[Image.Image], int]:
        """The PIL images of one sample (position-major, ``new_length`` per position) and its length."""
        num_frames = self.reader.num_frames(record)
        if self.modality == 'Flow':  # the list counts the video's frames: N frames give N - 1 flow pairs
            num_frames -= 1
            if num_frames == 0:
                raise BadVideoError(f'{record.path} ({record.where}): one frame, no flow pair')
        positions, length = self._positions(num_frames)
        # a position takes new_length consecutive frames, the last repeated at the video's end (TSM)
        frame_ids = [min(p + k, num_frames - 1) for p in positions.tolist() for k in range(self.new_length)]
        loaded = self.reader.read(record, sorted(set(frame_ids)))
        return [img for i in frame_ids for img in loaded[i]], length


def collate_videos(batch: Sequence, channels: int = 3, return_skipped: bool = False):
    """Batch ``(frames (T_i*C, H, W), label, length)`` samples, padding to the longest video.

    Each video is padded to ``T_max`` by repeating its last frame (``channels`` = C channels per
    frame); ``lengths`` keep the real frame counts so padding never enters a distance or a mean.
    None items (skipped bad videos) are dropped; if all are, the batch has N = 0.

    Returns:
        ``frames (N, T_max*C, H, W)``, ``labels`` LongTensor ``(N,)``, ``lengths`` LongTensor ``(N,)``,
        and with ``return_skipped`` the number of dropped items as a fourth element.
    """
    items = [b for b in batch if b is not None]
    skipped = len(batch) - len(items)
    if items:
        for frames, _, _ in items:
            if frames.dim() != 3 or frames.size(0) % channels:
                raise ValueError(f'sample of shape {tuple(frames.shape)} is not (T*{channels}, H, W)')
        t_max = max(frames.size(0) // channels for frames, _, _ in items)
        padded = [_pad_frames(frames, t_max, channels) for frames, _, _ in items]
        out = torch.stack(padded)
    else:
        out = torch.empty(0, 0, 0, 0)
    labels = torch.tensor([int(label) for _, label, _ in items], dtype=torch.long)
    lengths = torch.tensor([int(length) for _, _, length in items], dtype=torch.long)
    return (out, labels, lengths, skipped) if return_skipped else (out, labels, lengths)


def _pad_frames(frames: torch.Tensor, t_max: int, channels: int) -> torch.Tensor:
    """``(T*C, H, W) -> (t_max*C, H, W)`` by repeating the last frame."""
    missing = t_max - frames.size(0) // channels
    if missing == 0:
        return frames
    return torch.cat([frames, frames[-channels:].repeat(missing, 1, 1)])
