"""Extract the frames of every video under SRC into one folder per video under DST.

One tool for what TSM's `vid2img_kinetics.py` / `vid2img_sthv2.py` did per data set:

    python tools/vid2img.py UCF-101/ UCF101/jpg/ -j 8
    python tools/vid2img.py 20bn-something-something-v2/ 20bn-something-something-v2-frames/ \
        --template '{:06d}.jpg' --short_side 256 -j 8

`SRC/a/b/v.avi` becomes `DST/a/b/v/img_00001.jpg, img_00002.jpg, ...`: without --fps every decoded
frame is written, no more, no fewer, so the frame count equals `ops.video_io.count_frames`.

Resumable: a video is written into `DST/a/b/v.tmp-<pid>` and renamed to `DST/a/b/v` once all its
frames are there, so an existing non-empty `DST/a/b/v` is complete and skipped on a rerun, and a run
killed midway leaves only a `.tmp-<pid>` folder, which the next run deletes (when that process is
gone) and redoes. A video that cannot be decoded is listed at the end with the reason, the other
videos are still extracted, and the exit status is 1.

Decoding is PyAV's (frames written by PIL); --use_ffmpeg runs the `ffmpeg` command instead, whose
--fps resampling (its `fps` filter) may pick neighbouring frames slightly differently.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from multiprocessing import Pool

from PIL import Image
from tqdm import tqdm

from ops import video_io  # a module import, so that tests can patch video_io.iter_frames

DEFAULT_EXTS = 'mp4,avi,webm,mkv,mov,m4v,mpg,mpeg,flv,wmv,3gp,ogv'
TMP_RE = re.compile(r'\.tmp-(\d+)$')  # the in-progress folder of one worker process


@dataclass(frozen=True)
class Options:
    template: str = 'img_{:05d}.jpg'
    start_index: int = 1
    short_side: int | None = None
    fps: float | None = None
    quality: int = 95
    ffmpeg: str | None = None  # path of the ffmpeg binary; None decodes with PyAV


def find_videos(src: str, exts: set[str]) -> list[str]:
    """Paths relative to `src` of the files whose extension (case-insensitive) is in `exts`.

    Hidden files are left out: archives made on macOS hold `._name.avi` resource forks that are
    not videos.
    """
    found = []
    for root, dirs, files in os.walk(src, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            if name.startswith('.'):
                continue
            if os.path.splitext(name)[1][1:].lower() in exts:
                found.append(os.path.relpath(os.path.join(root, name), src))
    return found


def resized(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so that the shorter side is `short_side`, keeping the aspect ratio."""
    if not short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def ffmpeg_pattern(template: str) -> str:
    """Python template -> ffmpeg image2 pattern: 'img_{:05d}.jpg' -> 'img_%05d.jpg'."""
    prefix, width, suffix = split_template(template)
    escape = lambda s: s.replace('%', '%%')  # noqa: E731
    return escape(prefix) + (f'%0{width}d' if width else '%d') + escape(suffix)


def split_template(template: str) -> tuple[str, int | None, str]:
    """('img_', 5, '.jpg') for 'img_{:05d}.jpg', ('', None, '.jpg') for '{}.jpg'.

    The one field must be `{}`, `{:d}` or `{:0Nd}`: anything else (space padding, two fields)
    gives names that do not sort or cannot be parsed back.
    """
    m = re.fullmatch(r'([^{}]*)\{(?::0(\d+)d|:d)?\}([^{}]*)', template)
    if m is None:
        raise ValueError(f"frame template {template!r} must hold one integer field {{}}, {{:d}} or "
                         f"{{:0Nd}}, e.g. 'img_{{:05d}}.jpg'")
    return m.group(1), int(m.group(2)) if m.group(2) else None, m.group(3)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(dst_dirs: list[str]) -> int:
    """Delete the `.tmp-<pid>` folders next to `dst_dirs` whose process is gone (or is us, from an
    interrupted call); returns how many.

    Each parent folder is listed once (Something-Something puts 220k videos in one folder).
    """
    names = defaultdict(set)
    for d in dst_dirs:
        parent, name = os.path.split(d)
        names[parent].add(name)
    removed = 0
    for parent, wanted in names.items():
        if not os.path.isdir(parent):
            continue
        for entry in os.listdir(parent):
            m = TMP_RE.search(entry)
            pid = int(m.group(1)) if m else None
            if m and entry[:m.start()] in wanted and (pid == os.getpid() or not _pid_alive(pid)):
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
                removed += 1
    return removed


def _non_empty_dir(path: str) -> bool:
    if not os.path.isdir(path):
        return False
    with os.scandir(path) as it:
        return next(it, None) is not None


def _write_pyav(src: str, tmp: str, opt: Options) -> int:
    n = 0
    for n, image in enumerate(video_io.iter_frames(src, fps=opt.fps), start=1):
        if opt.short_side:
            image = image.resize(resized(*image.size, opt.short_side), Image.BILINEAR)
        image.save(os.path.join(tmp, opt.template.format(opt.start_index + n - 1)), quality=opt.quality)
    return n


def _write_ffmpeg(src: str, tmp: str, opt: Options) -> int:
    filters = []
    if opt.fps:
        filters.append(f'fps={opt.fps}')
    if opt.short_side:
        s = opt.short_side
        filters.append(f"scale=w='if(lte(iw,ih),{s},-1)':h='if(lte(iw,ih),-1,{s})'")
    qscale = max(1, min(31, round(31 - 30 * opt.quality / 100)))  # PIL 1..100 -> ffmpeg 31..1
    cmd = [opt.ffmpeg, '-nostdin', '-loglevel', 'error', '-i', src, '-threads', '1', '-map', '0:v:0']
    cmd += ['-vf', ','.join(filters)] if filters else []
    cmd += [] if opt.fps else ['-fps_mode', 'passthrough']  # every decoded frame, none duplicated
    cmd += ['-q:v', str(qscale), '-start_number', str(opt.start_index),
            os.path.join(tmp, ffmpeg_pattern(opt.template))]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise video_io.VideoDecodeError(
            f'{src}: ffmpeg exited with {proc.returncode}: {proc.stderr.strip()[-500:]}')
    n = len(os.listdir(tmp))
    if n == 0:
        raise video_io.VideoDecodeError(f'{src}: ffmpeg wrote no frame')
    return n


def extract_one(rel: str, src_root: str, dst_root: str, opt: Options) -> tuple[str, str, str]:
    """Extract `src_root/rel` into `dst_root/rel-without-extension`.

    Returns:
        (rel, status, message) with status 'done', 'skipped' (already extracted) or 'failed'.
    """
    src = os.path.join(src_root, rel)
    dst_dir = os.path.join(dst_root, os.path.splitext(rel)[0])
    if _non_empty_dir(dst_dir):
        return rel, 'skipped', ''
    tmp = f'{dst_dir}.tmp-{os.getpid()}'
    try:
        shutil.rmtree(tmp, ignore_errors=True)  # left by this process (interrupted) or an older one with our pid
        os.makedirs(tmp)
        write = _write_ffmpeg if opt.ffmpeg else _write_pyav
        n = write(src, tmp, opt)
        if os.path.isdir(dst_dir) and not os.listdir(dst_dir):
            os.rmdir(dst_dir)  # an empty folder (say from an interrupted older tool) holds nothing
        try:
            os.rename(tmp, dst_dir)
        except OSError:
            if _non_empty_dir(dst_dir):  # a concurrent run finished it first
                shutil.rmtree(tmp, ignore_errors=True)
                return rel, 'skipped', ''
            raise
        return rel, 'done', f'{n} frames'
    except Exception as e:  # one bad video must not stop the others; reported in the summary
        shutil.rmtree(tmp, ignore_errors=True)
        reason = str(e) if isinstance(e, video_io.VideoDecodeError) else f'{type(e).__name__}: {e}'
        return rel, 'failed', reason.removeprefix(f'{src}: ')  # the summary names the file


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', help='folder searched recursively for videos')
    p.add_argument('dst', help='frame folders are written here, at the same relative paths')
    p.add_argument('-j', '--jobs', type=int, default=1, help='worker processes (default 1)')
    p.add_argument('--short_side', type=int, default=None,
                   help='resize so the shorter side is this many pixels, keeping the aspect ratio')
    p.add_argument('--fps', type=float, default=None,
                   help='resample to this frame rate (default: write every decoded frame)')
    p.add_argument('--template', default='img_{:05d}.jpg', help="frame file names (default 'img_{:05d}.jpg')")
    p.add_argument('--start_index', type=int, default=1, help='number of the first frame (default 1)')
    p.add_argument('--ext', default=DEFAULT_EXTS,
                   help=f'video extensions, comma-separated (default {DEFAULT_EXTS})')
    p.add_argument('--quality', type=int, default=95, help='JPEG quality 1-100 (default 95)')
    p.add_argument('--use_ffmpeg', action='store_true',
                   help='decode with the ffmpeg command when it is on PATH (else PyAV, with a warning)')
    args = p.parse_args(argv)
    try:
        split_template(args.template)
    except ValueError as e:
        p.error(str(e))
    if args.jobs < 1 or not 1 <= args.quality <= 100 or (args.short_side is not None and args.short_side < 1):
        p.error('-j must be >= 1, --quality in 1..100 and --short_side >= 1')
    if args.fps is not None and args.fps <= 0:
        p.error('--fps must be positive')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    ffmpeg = None
    if args.use_ffmpeg:
        ffmpeg = shutil.which('ffmpeg')
        if ffmpeg is None:
            print('warning: --use_ffmpeg given but no ffmpeg on PATH; decoding with PyAV', file=sys.stderr)
    opt = Options(args.template, args.start_index, args.short_side, args.fps, args.quality, ffmpeg)
    if not os.path.isdir(args.src):
        print(f'error: {args.src} is not a folder', file=sys.stderr)
        return 2
    exts = {e.strip().lstrip('.').lower() for e in args.ext.split(',') if e.strip()}
    videos = find_videos(args.src, exts)
    if not videos:
        print(f'error: no video with extension {",".join(sorted(exts))} under {args.src}', file=sys.stderr)
        return 1

    # Two videos that differ only in extension would write into the same folder: refuse both.
    by_dst = defaultdict(list)
    for rel in videos:
        by_dst[os.path.splitext(rel)[0]].append(rel)
    failed = [(rel, 'same output folder as ' + ', '.join(r for r in group if r != rel))
              for group in by_dst.values() if len(group) > 1 for rel in group]
    todo = [group[0] for group in by_dst.values() if len(group) == 1]
    stale = remove_stale_tmp([os.path.join(args.dst, os.path.splitext(rel)[0]) for rel in todo])
    if stale:
        print(f'removed {stale} unfinished folders (*.tmp-<pid>) of earlier runs; their videos are redone')

    work = partial(extract_one, src_root=args.src, dst_root=args.dst, opt=opt)
    return run_videos(work, todo, args.jobs, 'vid2img', 'extracted', args.src, args.dst, failed)


def run_videos(work, todo: list, jobs: int, name: str, verb: str, src: str, dst: str, failed: list,
               initializer=None, initargs: tuple = ()) -> int:
    """Run ``work`` on every video of ``todo`` (a pool of ``jobs`` processes when it pays) with a progress bar; print
    the counts, then each failed video and its reason; 1 if any failed, else 0 (shared with tools/extract_flow.py).
    ``work`` returns ``(relative path, 'done'|'skipped'|'failed', message)``; ``failed`` may hold earlier failures."""
    counts = {'done': 0, 'skipped': 0, 'failed': 0}
    pool = Pool(jobs, initializer=initializer, initargs=initargs) if jobs > 1 and len(todo) > 1 else None
    try:
        results = pool.imap_unordered(work, todo) if pool else map(work, todo)
        with tqdm(results, total=len(todo), desc=name, unit='video', file=sys.stderr) as bar:
            for rel, status, message in bar:
                counts[status] += 1
                if status == 'failed':
                    failed.append((rel, message))
                    bar.set_postfix(failed=len(failed))
    finally:
        if pool:
            pool.terminate()
            pool.join()

    print(f'{name}: {counts["done"]} videos {verb}, {counts["skipped"]} already done, '
          f'{len(failed)} failed, into {dst}')
    if failed:
        print(f'{len(failed)} videos failed:', file=sys.stderr)
        for rel, reason in sorted(failed):
            print(f'  {os.path.join(src, rel)}: {reason}', file=sys.stderr)
        return 1
    return 0

if __name__ == '__main__':
    sys.exit(main())
