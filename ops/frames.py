"""Frame loading: the frames of a listed video as PIL images, from a folder of frame files or a video file.

``load_image`` decodes one frame file (large JPEGs at reduced scale, with simplejpeg when installed,
else Pillow; the same pixels either way) and can resize its short side at load. ``FrameReader`` reads
the frames of one ``VideoRecord``: position ``i`` (0-based) is the file ``image_tmpl.format(i +
start_index)`` (Flow: ``image_tmpl.format('x'|'y', ...)``) or frame ``i`` of a video file
(ops/video_io.py). A frame that cannot be read raises ``BadVideoError`` naming the list line and the
folder or frame file: bad input is never replaced by other data.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ops.transforms import GroupScale, short_side_size
from ops.video_list import BadVideoError, VideoRecord

try:  # optional: libjpeg-turbo without Pillow's per-file overhead; the same pixels (tests/test_frames.py)
    import simplejpeg
except ImportError:  # Pillow decodes every frame
    simplejpeg = None


def load_image(path: str, mode: str, decode_size: int | None = None,
               resize_short: int | None = None) -> Image.Image:
    """Decode one frame file fully into a PIL image of ``mode``.

    A JPEG whose short side is at least twice ``decode_size`` is decoded at a reduced scale
    (1/2, 1/4 or 1/8) that keeps its short side >= ``decode_size``: with ``simplejpeg`` when it is
    installed (``_decode_jpeg``), else with Pillow's ``Image.draft``; both give the same pixels.
    ``resize_short`` (``decode_size`` is then at least that) resizes the short side to that size as
    ``transforms.GroupScale(resize_short)`` would, on the decoded array (``_resize_short``).
    """
    decode_size = max(decode_size or 0, resize_short or 0) or None  # never decode below the resize's size
    if decode_size and simplejpeg is not None and mode in ('RGB', 'L'):
        array = _decode_jpeg(path, mode, decode_size)
        if array is not None:
            return _image(_resize_short(array, resize_short) if resize_short else array, mode)
    with Image.open(path) as img:
        w, h = img.size
        if decode_size and img.format in ('JPEG', 'MPO'):  # MPO: a camera's JPEG with extra pictures
            s = _jpeg_reduction(w, h, decode_size)
            if s > 1:  # asking Pillow for exactly (w // s, h // s) makes it pick s even for odd sizes
                img.draft(img.mode, (w // s, h // s))
        img.load()  # decode now, so a corrupt file fails here, naming it
        img = img.convert(mode)
    if not resize_short or img.size == short_side_size(*img.size, resize_short):
        return img
    if mode in ('RGB', 'L'):  # the fast path's resize, so that both paths give the same pixels
        return _image(_resize_short(np.array(img), resize_short), mode)
    return GroupScale(resize_short)([img])[0]


def _image(array: np.ndarray, mode: str) -> Image.Image:
    """``(H, W, 3)`` or ``(H, W[, 1])`` uint8 -> PIL image of ``mode`` ('RGB' or 'L')."""
    return Image.fromarray(array if mode == 'RGB' or array.ndim == 2 else array[:, :, 0], mode)


def _resize_short(array: np.ndarray, size: int) -> np.ndarray:
    """``(H, W[, C])`` uint8 with its short side resized to ``size`` (``short_side_size``), bilinear with
    antialiasing: torch's uint8 kernel, within one grey level of Pillow's and about twice as fast on 160x120.

    The array is viewed as a channels-last ``(1, C, H, W)`` batch whose batch stride is a whole frame: then
    the kernel writes its output channels-last too, and ``(H, W, C)`` comes back without a transpose.
    """
    h, w = array.shape[:2]
    tw, th = short_side_size(w, h, size)
    if (tw, th) == (w, h):
        return array
    frame = torch.from_numpy(array).reshape(1, h, w, -1).permute(0, 3, 1, 2)
    out = F.interpolate(frame, size=(th, tw), mode='bilinear', antialias=True, align_corners=False)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())


def _jpeg_reduction(w: int, h: int, decode_size: int) -> int:
    """The largest JPEG reduction (8, 4, 2; 1: none) that keeps the short side >= ``decode_size``."""
    if min(w, h) < 2 * decode_size:
        return 1
    return next(s for s in (8, 4, 2) if min(w, h) // s >= decode_size)


def _decode_jpeg(path: str, mode: str, decode_size: int) -> np.ndarray | None:
    """``load_image``'s fast path with simplejpeg: ``(H, W, 3 or 1)`` uint8; None for what it cannot decode
    (not a JPEG, CMYK, a corrupt file...), which Pillow then decodes or reports as before."""
    with open(path, 'rb') as f:
        buf = f.read()
    try:
        if not simplejpeg.is_jpeg(buf):
            return None
        h, w, colorspace = simplejpeg.decode_jpeg_header(buf)[:3]
        if min(w, h) < 8:  # libjpeg-turbo would scale a tiny frame by 7/8..1/8 to keep the minimum size
            return None
        # Pillow's own conversions for the rest (CMYK...; 'L' of a colour frame is the luma of its RGB)
        if colorspace not in (('Gray',) if mode == 'L' else ('Gray', 'YCbCr')):
            return None
        s = _jpeg_reduction(w, h, decode_size)
        # fastdct off: the accurate DCT that Pillow uses too; the minimum sizes select the scale 1/s
        array = simplejpeg.decode_jpeg(buf, colorspace='RGB' if mode == 'RGB' else 'GRAY', fastdct=False,
                                       fastupsample=False, min_height=h // s, min_width=w // s)
    except Exception:  # Pillow decodes it, or raises the error that the caller names
        return None
    return array


class FrameReader:
    """Reads the frames of listed videos for ``VideoDataset``.

    Args:
        modality: 'RGB' (grayscale frames become 3-channel) or 'Flow' (x and y images, 'L').
        image_tmpl, start_index: frame file names; position ``i`` is ``image_tmpl.format(i + start_index)``.
        video_source: 'frames' (a folder of images per video) or 'video' (files read by ops.video_io).
        decode_size, resize_short: passed to ``load_image`` for each frame file.
    """

    def __init__(self, modality: str, image_tmpl: str, start_index: int, video_source: str,
                 decode_size: int | None = None, resize_short: int | None = None):
        self.modality, self.image_tmpl, self.start_index = modality, image_tmpl, start_index
        self.video_source, self.decode_size, self.resize_short = video_source, decode_size, resize_short
        self._counts: dict[str, int] = {}  # frame counts of `path label` video files, per process

    def file_name(self, number: int) -> str:
        """The file of frame ``number`` (``start_index`` numbers position 0); for Flow its x image."""
        return self.image_tmpl.format('x', number) if self.modality == 'Flow' else self.image_tmpl.format(number)

    def frame_name(self, idx: int) -> str:
        """How a message names frame ``idx`` (0-based): its file, or its index in a video file."""
        if self.video_source == 'video':
            return f'frame {idx}'
        return self.file_name(idx + self.start_index)

    def read(self, record: VideoRecord, frame_ids: list[int]) -> dict[int, list[Image.Image]]:
        """Frames ``frame_ids`` (0-based, sorted, distinct) of a video, each as ``[rgb]`` or, for Flow,
        ``[x, y]``; all of one size, else a ``BadVideoError`` naming two frames."""
        if self.video_source == 'video':
            loaded = dict(zip(frame_ids, self._read_video(record, frame_ids)))
        else:
            loaded = {i: self._read_frame(record, i) for i in frame_ids}
        self._check_sizes(record, loaded)
        return loaded

    def _check_sizes(self, record: VideoRecord, loaded: dict[int, list[Image.Image]]) -> None:
        """Every loaded frame of a video has the first one's size, else a ``BadVideoError`` naming both frames."""
        first = next(iter(loaded))
        size = loaded[first][0].size
        for i, images in loaded.items():
            for img in images:
                if img.size != size:
                    raise BadVideoError(
                        f'frames of different sizes in video {record.path} ({record.where}): '
                        f'{self.frame_name(i)} is {img.size[0]}x{img.size[1]}, '
                        f'{self.frame_name(first)} is {size[0]}x{size[1]}')

    def num_frames(self, record: VideoRecord) -> int:
        """The video's frame count: the list's, or for a ``path label`` line of a video file, counted by decoding
        (once per video and process)."""
        if record.num_frames is not None:
            return record.num_frames
        if record.path not in self._counts:
            from ops import video_io  # lazily: only video files need PyAV
            self._check_video_file(record)
            try:
                self._counts[record.path] = video_io.count_frames(record.path)
            except (video_io.VideoDecodeError, OSError) as err:
                raise BadVideoError(f'cannot decode video {record.path} ({record.where}): {err}') from err
        if self._counts[record.path] <= 0:
            raise BadVideoError(f'empty video: {record.path} has no frames ({record.where})')
        return self._counts[record.path]

    def _check_video_file(self, record: VideoRecord) -> None:
        if not os.path.isfile(record.path):
            raise BadVideoError(f'video file not found: {record.path} (listed at {record.where})')

    def _read_video(self, record: VideoRecord, indices: list[int]) -> list[list[Image.Image]]:
        """Frames ``indices`` of a video file, each as a one-image list."""
        from ops import video_io
        self._check_video_file(record)
        try:
            images = video_io.read_frames(record.path, indices)
        except (video_io.VideoDecodeError, OSError) as err:
            raise BadVideoError(f'cannot decode frames {indices[0]}..{indices[-1]} of video {record.path} '
                                f'({record.where}): {err}') from err
        return [[img if img.mode == 'RGB' else img.convert('RGB')] for img in images]

    def _read_frame(self, record: VideoRecord, idx: int) -> list[Image.Image]:
        """Frame ``idx`` (0-based) of a frame folder: ``[rgb]`` or, for Flow, ``[x, y]``."""
        number = idx + self.start_index
        if self.modality == 'RGB':
            return [self._open(record, self.image_tmpl.format(number), 'RGB')]
        return [self._open(record, self.image_tmpl.format(c, number), 'L') for c in ('x', 'y')]

    def _open(self, record: VideoRecord, name: str, mode: str) -> Image.Image:
        path = os.path.join(record.path, name)
        try:
            return load_image(path, mode, self.decode_size, self.resize_short)
        except (FileNotFoundError, NotADirectoryError) as err:
            raise BadVideoError(self._missing_message(record, path)) from err
        except Exception as err:  # any PIL failure is a bad file; name it
            raise BadVideoError(f'cannot decode frame {path} of video {record.path} ({record.where}): '
                                f'{type(err).__name__}: {err}') from err

    def _missing_message(self, record: VideoRecord, path: str) -> str:
        if os.path.isfile(record.path):
            return (f"{record.path} ({record.where}) is a file, not a frame folder: for video files "
                    f"use video_source='video'")
        if not os.path.isdir(record.path):
            return f'video folder not found: {record.path} (listed at {record.where})'
        if not os.listdir(record.path):
            return f'empty video: folder {record.path} holds no frames (listed at {record.where})'
        return (f'frame not found: {path} of video {record.path} ({record.where} says {record.num_frames} '
                f'frames; template {self.image_tmpl!r}, start index {self.start_index})')
