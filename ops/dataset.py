"""Video data set: list file -> VideoRecord -> frame indices -> PIL frames -> transformed tensor.

Two ways to pick frames (docs/DESIGN.md §1, §2):
  * sampling (``frames=None``): TSN/TSM segments, ``num_segments`` positions per clip;
  * clustering (``frames=F`` or ``'all'``): every frame of the video (evenly sampled down to F
    when longer, padded with the last frame up to F when shorter); the model clusters them.

Frame positions are 0-based; the file of position ``i`` is ``image_tmpl.format(i + start_index)``.
Bad input is never replaced by other data: it raises ``BadVideoError`` naming the list line and
the folder or frame file, or, with ``on_bad_video='skip'``, the sample becomes ``None`` and
``collate_videos`` drops it.
"""
from __future__ import annotations

import math
import os
import random
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.data as data
from PIL import Image

from ops.transforms import GroupScale, Stack, ToTorchFormatTensor, short_side_size

try:  # optional: libjpeg-turbo without Pillow's per-file overhead; the same pixels (tests/test_dataset.py)
    import simplejpeg
except ImportError:  # Pillow decodes every frame
    simplejpeg = None

FramesArg = int | str | None


class BadVideoError(ValueError):
    """A listed video that cannot be loaded: missing folder/file, missing or undecodable frame, no frames."""


@dataclass
class VideoRecord:
    """One line of a list file.

    Attributes:
        path: the video folder (or file), joined with the data set root.
        num_frames: frames in the video; None for a ``path label`` line of a video file (counted on use).
        labels: 0-based class ids (more than one for multi-label sets).
        source: the list file; line: the 1-based line number, for error messages.
    """
    path: str
    num_frames: int | None
    labels: list[int]
    source: str
    line: int

    @property
    def label(self) -> int:
        return self.labels[0]

    @property
    def where(self) -> str:
        return f'{self.source}:{self.line}'


# ----------------------------------------------------------------------------- list parsing

def _positive_int(token: str, where: str, fields: list[str]) -> int:
    if not token.isdigit() or int(token) == 0:
        if not token.lstrip('+-').isdigit() and len(fields) > 3:
            raise ValueError(f'{where}: the line has {len(fields)} fields and the second, {token!r}, is not a frame '
                             f"count: expected 'path num_frames label [label ...]', and paths cannot contain "
                             f'spaces (rename {" ".join(fields[:-2])!r})')
        raise ValueError(f'{where}: num_frames must be a positive integer, got {token!r}'
                         + (' (paths cannot contain spaces)' if not token.lstrip('+-').isdigit() else ''))
    return int(token)


def _label(token: str, where: str, num_class: int | None) -> int:
    try:
        value = int(token)
    except ValueError:
        raise ValueError(f'{where}: label must be an integer class id, got {token!r}') from None
    upper = num_class if num_class is not None else math.inf
    if not 0 <= value < upper:
        raise ValueError(f'{where}: label {value} outside [0, {num_class}) (labels are 0-based)')
    return value


def _read_lines(list_file: str) -> list[str]:
    """The lines of a UTF-8 list, a byte-order mark at its start dropped.

    Raises:
        ValueError: a line that is not UTF-8, named ``file:line``.
    """
    with open(list_file, 'rb') as f:
        raw = f.read().splitlines()  # bytes: only \n, \r\n and \r end a line, as in an editor
    if raw and raw[0].startswith(b'\xef\xbb\xbf'):
        raw[0] = raw[0][3:]
    lines = []
    for number, data in enumerate(raw, start=1):
        try:
            lines.append(data.decode('utf-8'))
        except UnicodeDecodeError as err:
            raise ValueError(f'{list_file}:{number}: not UTF-8 text ({err.reason} at byte {err.start} of the '
                             f'line): save the list as UTF-8') from None
    return lines


def parse_list(list_file: str, root: str, num_class: int | None,
               video_source: str = 'frames') -> list[VideoRecord]:
    """Read a list file of lines ``path num_frames label [label ...]``.

    With ``video_source='video'`` a line may also be ``path label`` (then ``num_frames`` is None
    and counted by decoding when first needed); a line of 3+ fields is always read as
    ``path num_frames label ...``. Blank lines and lines starting with ``#`` are skipped; paths are
    relative to ``root`` unless absolute and may not contain spaces.

    The file is read as UTF-8, a byte-order mark at its start ignored. A video listed twice is warned
    about once (``RuntimeWarning`` naming the first repeated line and the count), as it trains twice.

    Raises:
        FileNotFoundError: ``list_file`` does not exist.
        ValueError: a malformed line (message ``file:line: what was expected``) or no videos at all.
    """
    if os.path.isdir(list_file):
        raise ValueError(f'{list_file} is a folder, not a list file')
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f'list file not found: {list_file}')
    records = []
    for line_no, text in enumerate(_read_lines(list_file), start=1):
        fields = text.split()
        if not fields or fields[0].startswith('#'):
            continue
        where = f'{list_file}:{line_no}'
        if video_source == 'video' and len(fields) == 2:
            count, label_tokens = None, fields[1:]
        elif len(fields) < 3:
            expected = "'path num_frames label [label ...]'" + (" or 'path label'" * (video_source == 'video'))
            raise ValueError(f'{where}: expected {expected}, got {len(fields)} field(s): {text.strip()!r}')
        else:
            count, label_tokens = _positive_int(fields[1], where, fields), fields[2:]
        labels = [_label(t, where, num_class) for t in label_tokens]
        records.append(VideoRecord(os.path.join(root, fields[0]), count, labels, list_file, line_no))
    if not records:
        raise ValueError(f'{list_file}: no videos listed (the file is empty or holds only comments)')
    first_line: dict[str, int] = {}
    repeated = []
    for r in records:
        if r.path in first_line:
            repeated.append((r, first_line[r.path]))
        first_line.setdefault(r.path, r.line)
    if repeated:
        r, first = repeated[0]
        warnings.warn(f'{r.where}: {r.path} is listed again (first at line {first}); {len(repeated)} repeated '
                      f'line(s) in {list_file}, each trained or scored once more', RuntimeWarning)
    return records


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


# ----------------------------------------------------------------------------- frame indices
# All return 0-based positions into a video of `num_frames` frames, as an int64 array.
# `rng` is a numpy RandomState or the np.random module (seeded per DataLoader worker by torch).

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


# ----------------------------------------------------------------------------- frame loading

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


class VideoDataset(data.Dataset):
    """Frames of the videos of a list file, as TSM's TSNDataSet.

    ``__getitem__`` returns ``(frames (T*C, H, W) float, label, length)`` where T positions were
    loaded (each position contributes ``new_length`` images: C = 3 * new_length for RGB,
    2 * new_length for Flow) and ``length`` counts the real, non-padded positions (= T when
    sampling). Multi-crop transforms multiply the first dimension by the number of crops.

    Args:
        root_path: data set root; list paths are relative to it unless absolute.
        list_file: the list (see ``parse_list``).
        num_segments: positions per clip when sampling (``frames=None``).
        new_length: consecutive frames per position (TSM: 1 for RGB, 5 for Flow).
        modality: 'RGB' (grayscale frames become 3-channel) or 'Flow' (``image_tmpl.format('x'|'y', i)``,
            the flow from frame i to i + 1: a list line of N frames gives N - 1 flow positions).
        transform: maps the list of PIL images to a tensor; None: stack to ``(T*C, H, W)`` in [0, 1].
        random_shift: training sampling; False: segment centres (validation).
        test_mode: test sampling (``num_clips``, ``twice_sample``, 10-clip dense with ``num_clips=10``).
        dense_sample, twice_sample, num_clips: TSM's options; twice and clips apply to evaluation.
        frames: None (sampling), an int F or 'all' (clustering mode, see ``cluster_indices``).
        num_class: labels must lie in ``[0, num_class)``.
        video_source: 'frames' (a folder of images per video) or 'video' (files read by ops.video_io).
        on_bad_video: 'error' raises ``BadVideoError``; 'skip' returns None for that video and warns.
        decode_size: short side the transform needs; JPEGs of twice that or more decode at
            reduced size (``transforms.train_decode_size(img_size)`` for training, ``scale_size``
            for evaluation). Only for transforms that rescale first (multi-scale crop, GroupScale);
            None (default): full size.
        resize_short: resize each frame's short side to this at load, on the decoded array
            (``load_image``): for transforms that begin with ``GroupScale(resize_short)``, which then
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
                 on_bad_video: str = 'error', decode_size: int | None = None, resize_short: int | None = None):
        self.root_path, self.list_file = root_path, list_file
        self.num_segments, self.new_length, self.modality = num_segments, new_length, modality
        self.image_tmpl, self.start_index, self.transform = image_tmpl, start_index, transform
        self.random_shift, self.test_mode = random_shift, test_mode
        self.dense_sample, self.twice_sample, self.num_clips = dense_sample, twice_sample, num_clips
        self.frames = _check_frames(frames)
        self.video_source, self.on_bad_video, self.decode_size = video_source, on_bad_video, decode_size
        self.resize_short = resize_short
        self._check_options()
        self.video_list = parse_list(list_file, root_path, num_class, video_source)
        self._counts: dict[str, int] = {}  # frame counts of `path label` video files, per process
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
            number = r.num_frames + self.start_index
            name = self.image_tmpl.format('x', number) if self.modality == 'Flow' else self.image_tmpl.format(number)
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
        try:
            name = self.image_tmpl.format('x', 0) if self.modality == 'Flow' else self.image_tmpl.format(0)
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
        if self.dense_sample:
            training = self.random_shift and not self.test_mode
            mode = 'train' if training else ('test' if self.test_mode or self.num_clips > 1 else 'val')
            idx = dense_indices(num_frames, self.num_segments, mode, num_clips=self.num_clips)
        elif self.test_mode or not self.random_shift:
            idx = val_indices(num_frames, self.num_segments, self.new_length, self.twice_sample, self.num_clips)
        else:
            idx = train_indices(num_frames, self.num_segments, self.new_length)
        return idx, len(idx)

    def _load_sample(self, record: VideoRecord) -> tuple[list[Image.Image], int]:
        """The PIL images of one sample (position-major, ``new_length`` per position) and its length."""
        num_frames = self._num_frames(record)
        if self.modality == 'Flow':  # the list counts the video's frames: N frames give N - 1 flow pairs
            num_frames -= 1
            if num_frames == 0:
                raise BadVideoError(f'{record.path} ({record.where}): one frame, no flow pair')
        positions, length = self._positions(num_frames)
        # a position takes new_length consecutive frames, the last repeated at the video's end (TSM)
        frame_ids = [min(p + k, num_frames - 1) for p in positions.tolist() for k in range(self.new_length)]
        unique = sorted(set(frame_ids))
        if self.video_source == 'video':
            loaded = dict(zip(unique, self._read_video(record, unique)))
        else:
            loaded = {i: self._read_frame(record, i) for i in unique}
        self._check_sizes(record, loaded)
        return [img for i in frame_ids for img in loaded[i]], length

    def _check_sizes(self, record: VideoRecord, loaded: dict[int, list[Image.Image]]) -> None:
        """Every loaded frame of a video has the first one's size, else a ``BadVideoError`` naming both frames."""
        first = next(iter(loaded))
        size = loaded[first][0].size
        for i, images in loaded.items():
            for img in images:
                if img.size != size:
                    raise BadVideoError(
                        f'frames of different sizes in video {record.path} ({record.where}): '
                        f'{self._frame_name(i)} is {img.size[0]}x{img.size[1]}, '
                        f'{self._frame_name(first)} is {size[0]}x{size[1]}')

    def _frame_name(self, idx: int) -> str:
        """How a message names frame ``idx`` (0-based): its file, or its index in a video file."""
        if self.video_source == 'video':
            return f'frame {idx}'
        number = idx + self.start_index
        return self.image_tmpl.format('x', number) if self.modality == 'Flow' else self.image_tmpl.format(number)

    def _num_frames(self, record: VideoRecord) -> int:
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


def _check_frames(frames: FramesArg) -> FramesArg:
    """None, a positive int (digits accepted) or 'all'."""
    if frames is None or frames == 'all':
        return frames
    if isinstance(frames, str) and frames.isdigit():
        frames = int(frames)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames <= 0:
        raise ValueError(f"frames must be None, a positive integer or 'all', got {frames!r}")
    return frames


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
