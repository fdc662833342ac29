"""Compute the optical flow of every video under SRC as TSN's x/y JPEG pairs under DST.

The counterpart of tools/vid2img.py for the Flow stream (TSN's `dense_flow`, which TSM points to):

    python tools/extract_flow.py UCF-101/ data/ucf101/ -j 2                     # video files
    python tools/extract_flow.py data/move4mnist data/move4mnist --from frames -j 2  # frame folders

Input: video files decoded by PyAV (ops/video_io.py), or with `--from frames` a tree of frame
folders as tools/vid2img.py (`img_00001.jpg`, ...) and tools/make_move4mnist.py (`0.jpg`, ...)
write; --frame_template names their files (default: found per folder among FRAME_TEMPLATES).

Output: for the pair of consecutive frames (k, k+1) the files `flow_x_{k:05d}.jpg` and
`flow_y_{k:05d}.jpg` (--template), so N frames give N-1 pairs. k counts from 1 for video files
(as dense_flow), and for frame folders from the number of the first frame (Move4MNIST: 0), so one
`start_index` serves a data set's RGB and Flow frames. Each image is `encode_flow`'s: the
displacement in pixels clipped to +-bound (--bound, default 20) and mapped linearly onto 0..255,
128 meaning no motion; x > 128 is motion to the right, y > 128 motion down the image.

`SRC/a/v.avi` goes to `DST/a/v/`; with `--from frames` `SRC/a/v/` goes to `DST/a/v/`, which may be
the same folder (SRC = DST: the flow lies beside the RGB frames, where ops/dataset_config.py looks).
Resumable as vid2img: the pairs are written into `DST/a/v.tmp-<pid>` and then moved into `DST/a/v`,
the first y image last, so a video whose first y image exists is complete and skipped on a rerun.
A video that cannot be read is listed at the end with the reason, the others are still done, and
the exit status is 1.

Algorithms: `tvl1` (default) is OpenCV's Dual TV-L1 with its default parameters, the flow that
TSN, TSM and I3D trained on, so published Flow models and recipes apply; `dis` (DIS, preset
medium) is much faster at some accuracy cost (speeds: docs/PERFORMANCE.md, "Optical flow").
Both need opencv-contrib-python-headless (TV-L1 is in the contrib module `optflow`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from ops import video_io  # a module import, so that tests can patch video_io.iter_frames
from tools.vid2img import DEFAULT_EXTS, TMP_RE, find_videos, remove_stale_tmp, resized, run_videos, split_template

FLOW_TEMPLATE = 'flow_{}_{:05d}.jpg'
# the frame names of tools/vid2img.py (and TSM's sets) and of tools/make_move4mnist.py
FRAME_TEMPLATES = ('img_{:05d}.jpg', '{:05d}.jpg', '{:06d}.jpg', '{}.jpg')
ALGOS = ('tvl1', 'dis')


@dataclass(frozen=True)
class Options:
    algo: str = 'tvl1'
    bound: float = 20.0
    template: str = FLOW_TEMPLATE
    start_index: int | None = None  # None: 1 for videos, the first frame's number for frame folders
    short_side: int | None = None
    quality: int = 95
    frame_template: str | None = None  # None: found per folder among FRAME_TEMPLATES


def encode_flow(flow: np.ndarray, bound: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Flow -> TSN's two 8-bit images.

    Args:
        flow: ``(H, W, 2)`` float displacements in pixels from frame k to frame k+1; channel 0 is x
            (positive: motion to the right), channel 1 is y (positive: motion down the image), as
            OpenCV's flow algorithms return them.
        bound: displacements are clipped to ``[-bound, bound]``.
    Returns:
        ``(x, y)``, each ``(H, W)`` uint8: ``floor((v + bound) * 255 / (2 * bound) + 0.5)``, so
        ``-bound -> 0``, ``0 -> 128`` (no motion), ``+bound -> 255`` (dense_flow's linear map).
    """
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f'flow must be (H, W, 2), got {flow.shape}')
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    u8 = np.floor(scaled + 0.5).astype(np.uint8)
    return u8[:, :, 0], u8[:, :, 1]


def decode_flow(x: np.ndarray, y: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """The inverse of ``encode_flow``: two ``(H, W)`` uint8 images -> ``(H, W, 2)`` float32 pixels.

    128 decodes to exactly 0; inside ``+-bound`` the round trip is within one grey level, ``2 * bound / 255``
    pixels (the encoding's centre 127.5 is rounded to 128, so the levels are half a level off elsewhere).
    """
    step = 2 * bound / 255.0
    return np.stack([(x.astype(np.float32) - 128) * step, (y.astype(np.float32) - 128) * step], axis=-1)


def flow_algorithm(algo: str):
    """An OpenCV ``DenseOpticalFlow`` whose ``calc(prev, next, None)`` takes two ``(H, W)`` uint8 images."""
    import cv2  # opencv-contrib-python-headless: imported here so `--help` works without it
    if algo == 'tvl1':
        if not hasattr(cv2, 'optflow'):
            raise RuntimeError('cv2.optflow is missing: TV-L1 needs opencv-contrib-python-headless, '
                               'not opencv-python (pip uninstall opencv-python; pip install '
                               'opencv-contrib-python-headless)')
        return cv2.optflow.DualTVL1OpticalFlow_create()
    if algo == 'dis':
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    raise ValueError(f'unknown flow algorithm {algo!r}; known: {", ".join(ALGOS)}')


def compute_flow(algorithm, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """``(H, W, 2)`` float32 flow from ``prev`` to ``nxt`` (two ``(H, W)`` uint8 grey images)."""
    return algorithm.calc(np.ascontiguousarray(prev), np.ascontiguousarray(nxt), None)  # DIS asserts contiguity


# ---------------------------------------------------------------- inputs

def _number(name: str, template: str) -> int | None:
    """The number ``k`` for which ``template.format(k) == name``, or None."""
    prefix, _, suffix = split_template(template)
    digits = name[len(prefix):len(name) - len(suffix)]
    if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix) \
            and digits.isdigit() and template.format(int(digits)) == name:
        return int(digits)
    return None


def frame_numbers(folder: str, template: str) -> list[int]:
    """Sorted numbers of the files in ``folder`` named exactly ``template.format(number)``."""
    return sorted(k for k in (_number(name, template) for name in os.listdir(folder)) if k is not None)


def find_frame_folders(src: str, templates: tuple[str, ...]) -> list[str]:
    """Paths relative to ``src`` of the folders holding a file named by one of ``templates``.

    Hidden folders and the `.tmp-<pid>` folders of this tool and vid2img are left out.
    """
    found = []
    for root, dirs, files in os.walk(src, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.') and not TMP_RE.search(d))
        if any(_number(name, t) is not None for t in templates for name in files):
            found.append(os.path.relpath(root, src))
    return found


def folder_frames(folder: str, template: str | None) -> tuple[str, list[int]]:
    """The frame template of ``folder`` and its frame numbers, consecutive.

    Raises:
        video_io.VideoDecodeError: no frames, frames of two templates (give --frame_template), or a gap.
    """
    candidates = (template,) if template else FRAME_TEMPLATES
    matches = [(t, frame_numbers(folder, t)) for t in candidates]
    matches = [(t, n) for t, n in matches if n]
    if not matches:
        raise video_io.VideoDecodeError(f'{folder}: no frame named like {" or ".join(candidates)}')
    if len(matches) > 1:
        raise video_io.VideoDecodeError(f'{folder}: frames named like {" and ".join(t for t, _ in matches)}; '
                                        f'give --frame_template')
    template, numbers = matches[0]
    for expected, number in enumerate(numbers, start=numbers[0]):
        if number != expected:
            raise video_io.VideoDecodeError(f'{folder}: no frame {template.format(expected)} (gap)')
    return template, numbers


def _grey(image: Image.Image, short_side: int | None) -> np.ndarray:
    """A PIL frame -> ``(H, W)`` uint8 luma, resized (bilinear, as vid2img) so the short side is ``short_side``."""
    image = image.convert('L')
    if short_side:
        image = image.resize(resized(*image.size, short_side), Image.BILINEAR)
    return np.asarray(image)


def iter_grey_frames(src: str, opt: Options, from_frames: bool) -> tuple[int, Iterator[np.ndarray]]:
    """(number of the first flow pair, the grey frames of the video file or frame folder ``src``)."""
    if not from_frames:
        frames = (_grey(img, opt.short_side) for img in video_io.iter_frames(src))
        return (1 if opt.start_index is None else opt.start_index), frames
    template, numbers = folder_frames(src, opt.frame_template)

    def read() -> Iterator[np.ndarray]:
        for number in numbers:
            path = os.path.join(src, template.format(number))
            try:
                with Image.open(path) as img:
                    img.load()  # decode now, so a corrupt file fails here, naming it
                    yield _grey(img, opt.short_side)
            except OSError as e:
                raise video_io.VideoDecodeError(f'{path}: {type(e).__name__}: {e}') from e
    return (numbers[0] if opt.start_index is None else opt.start_index), read()


# ---------------------------------------------------------------- one video

def write_flow(frames: Iterator[np.ndarray], tmp: str, opt: Options, first: int, src: str) -> int:
    """Write the flow of each consecutive pair of ``frames`` into ``tmp``; returns the number of pairs."""
    algorithm = flow_algorithm(opt.algo)
    prev, n = None, 0
    for i, frame in enumerate(frames):
        if prev is not None:
            if frame.shape != prev.shape:
                raise video_io.VideoDecodeError(f'{src}: frame {i} is {frame.shape[1]}x{frame.shape[0]}, '
                                                f'frame {i - 1} {prev.shape[1]}x{prev.shape[0]}')
            x, y = encode_flow(compute_flow(algorithm, prev, frame), opt.bound)
            for c, image in (('x', x), ('y', y)):
                Image.fromarray(image, 'L').save(os.path.join(tmp, opt.template.format(c, first + n)),
                                                 quality=opt.quality)
            n += 1
        prev = frame
    if n == 0:
        raise video_io.VideoDecodeError(f'{src}: {"no frame" if prev is None else "one frame"}: no pair of frames')
    return n


def _finish(tmp: str, dst_dir: str, last_name: str) -> None:
    """Move the pairs of ``tmp`` into ``dst_dir``: a rename when ``dst_dir`` is new or empty, else file by
    file with ``last_name`` (the completion mark) last."""
    if os.path.isdir(dst_dir) and not os.listdir(dst_dir):
        os.rmdir(dst_dir)
    if not os.path.exists(dst_dir):
        os.makedirs(os.path.dirname(dst_dir) or '.', exist_ok=True)
        try:
            os.rename(tmp, dst_dir)
            return
        except OSError:
            if not os.path.isdir(dst_dir):
                raise  # else a concurrent run made the folder first: merge into it
    for name in sorted(n for n in os.listdir(tmp) if n != last_name) + [last_name]:
        os.replace(os.path.join(tmp, name), os.path.join(dst_dir, name))
    shutil.rmtree(tmp, ignore_errors=True)


def _first_y(rel_src: str, opt: Options, from_frames: bool, src_root: str) -> str | None:
    """Name of the video's first y image, written last (the completion mark); None when unknown yet."""
    if opt.start_index is not None or not from_frames:
        return opt.template.format('y', 1 if opt.start_index is None else opt.start_index)
    try:
        _, numbers = folder_frames(os.path.join(src_root, rel_src), opt.frame_template)
    except video_io.VideoDecodeError:
        return None  # reported when the video is done
    return opt.template.format('y', numbers[0])


def extract_one(rel: str, src_root: str, dst_root: str, opt: Options, from_frames: bool) -> tuple[str, str, str]:
    """Compute the flow of ``src_root/rel`` into ``dst_root/rel`` (video files: without the extension).

    Returns:
        (rel, status, message) with status 'done', 'skipped' (already there) or 'failed'.
    """
    src = os.path.join(src_root, rel)
    dst_dir = os.path.normpath(os.path.join(dst_root, rel if from_frames else os.path.splitext(rel)[0]))
    mark = _first_y(rel, opt, from_frames, src_root)
    if mark and os.path.exists(os.path.join(dst_dir, mark)):
        return rel, 'skipped', ''
    tmp = f'{dst_dir}.tmp-{os.getpid()}'
    try:
        shutil.rmtree(tmp, ignore_errors=True)  # left by this process (interrupted) or an older one with our pid
        os.makedirs(tmp)
        first, frames = iter_grey_frames(src, opt, from_frames)
        n = write_flow(frames, tmp, opt, first, src)
        _finish(tmp, dst_dir, opt.template.format('y', first))
        return rel, 'done', f'{n} pairs'
    except Exception as e:  # one bad video must not stop the others; reported in the summary
        shutil.rmtree(tmp, ignore_errors=True)
        reason = str(e) if isinstance(e, video_io.VideoDecodeError) else f'{type(e).__name__}: {e}'
        return rel, 'failed', reason.removeprefix(f'{src}: ')  # the summary names the file


def _init_worker(threads: int) -> None:
    import cv2
    cv2.setNumThreads(threads)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', help='folder searched recursively for videos (or frame folders with --from frames)')
    p.add_argument('dst', help='flow folders are written here, at the same relative paths (may equal src)')
    p.add_argument('--from', dest='source', choices=('videos', 'frames'), default='videos',
                   help='read video files (default) or frame folders')
    p.add_argument('--algo', choices=ALGOS, default='tvl1',
                   help="'tvl1': TV-L1 as TSN/TSM/I3D (default); 'dis': DIS, much faster")
    p.add_argument('--bound', type=float, default=20.0, help='displacements clipped to +-bound pixels (default 20)')
    p.add_argument('-j', '--jobs', type=int, default=1, help='worker processes (default 1)')
    p.add_argument('--short_side', type=int, default=None,
                   help='resize so the shorter side is this many pixels before the flow, keeping the aspect ratio')
    p.add_argument('--template', default=FLOW_TEMPLATE, help=f"flow file names (default '{FLOW_TEMPLATE}')")
    p.add_argument('--start_index', type=int, default=None,
                   help='number of the first pair (default: 1 for videos, the first frame number for frame folders)')
    p.add_argument('--frame_template', default=None,
                   help=f"--from frames: frame file names (default: found among {', '.join(FRAME_TEMPLATES)})")
    p.add_argument('--ext', default=DEFAULT_EXTS, help=f'video extensions, comma-separated (default {DEFAULT_EXTS})')
    p.add_argument('--quality', type=int, default=95, help='JPEG quality 1-100 (default 95)')
    args = p.parse_args(argv)
    try:
        if args.frame_template:
            split_template(args.frame_template)
        x, y = args.template.format('x', 1), args.template.format('y', 1)
    except (ValueError, IndexError, KeyError) as e:
        p.error(f'bad template: {e}')
    if x == y:
        p.error(f"--template {args.template!r} needs a field for 'x'/'y' and one for the number")
    if args.jobs < 1 or not 1 <= args.quality <= 100 or (args.short_side is not None and args.short_side < 1):
        p.error('-j must be >= 1, --quality in 1..100 and --short_side >= 1')
    if args.bound <= 0:
        p.error('--bound must be positive')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from_frames = args.source == 'frames'
    opt = Options(args.algo, args.bound, args.template, args.start_index, args.short_side, args.quality,
                  args.frame_template)
    if not os.path.isdir(args.src):
        print(f'error: {args.src} is not a folder', file=sys.stderr)
        return 2
    flow_algorithm(args.algo)  # fail now, with the remedy, if OpenCV lacks the algorithm
    if from_frames:
        videos = find_frame_folders(args.src, (args.frame_template,) if args.frame_template else FRAME_TEMPLATES)
        what = 'frame folder'
    else:
        exts = {e.strip().lstrip('.').lower() for e in args.ext.split(',') if e.strip()}
        videos = find_videos(args.src, exts)
        what = f'video with extension {",".join(sorted(exts))}'
    if not videos:
        print(f'error: no {what} under {args.src}', file=sys.stderr)
        return 1

    # Two videos that differ only in extension would write into the same folder: refuse both.
    by_dst = defaultdict(list)
    for rel in videos:
        by_dst[rel if from_frames else os.path.splitext(rel)[0]].append(rel)
    failed = [(rel, 'same output folder as ' + ', '.join(r for r in group if r != rel))
              for group in by_dst.values() if len(group) > 1 for rel in group]
    todo = [group[0] for group in by_dst.values() if len(group) == 1]
    stale = remove_stale_tmp([os.path.normpath(os.path.join(args.dst, d)) for d in by_dst])
    if stale:
        print(f'removed {stale} unfinished folders (*.tmp-<pid>) of earlier runs; their videos are redone')

    work = partial(extract_one, src_root=args.src, dst_root=args.dst, opt=opt, from_frames=from_frames)
    return run_videos(work, todo, args.jobs, f'extract_flow ({args.algo})', 'done', args.src, args.dst, failed,
                      initializer=_init_worker, initargs=(1,))

if __name__ == '__main__':
    sys.exit(main())
