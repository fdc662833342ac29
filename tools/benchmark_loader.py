"""Frame-loading speed: plain Pillow against ``ops.frames.load_image`` (reduced JPEG decoding) and the
full ``VideoDataset`` + DataLoader pipeline, and one 224 px training clip against a ResNet-50 step.

    python tools/benchmark_loader.py                          # 320x240 JPEGs read at 112 px, -j 2
    python tools/benchmark_loader.py --frames_dir DIR --videos 8 --frames 32 -j 4 --json   # DIR/<video>/img_00001.jpg
    python tools/benchmark_loader.py --skip_model --scale_size 112    # validation read at 112 too

Synthetic frame folders (smooth gradients + noise + moving shapes, JPEG quality 90) are written once
into ``--cache`` and reused. Sections: (a) ``Image.open(p).convert('RGB').resize(...)`` to a short side
of ``--target`` vs (b) ``load_image(p, 'RGB', resize_short=target)``: reduced decoding (simplejpeg when it
is installed, and then also timed with Pillow's draft mode alone) and torch's resize of the decoded array;
also the same decoding followed by Pillow's resize; with the mean absolute difference of (a) and (b) (0-255
scale); (c) a validation run's pipeline (``val_transform(scale_size, target)``, stack, normalise;
``decode_size=resize_short=scale_size`` as ``builder.build_dataset``) against full-size decoding and
Pillow's resize, 1 and ``-j`` workers;
(d) ``--clip_frames`` frames of a ``--clip_size`` clip through the training pipeline
(``decode_size=train_decode_size(img_size)``) vs a ResNet-50 TSM training step on 8 frames and a
cumulative-clustering step on ``--clip_frames`` frames. Decoder figures are medians of ``--repeat``
rounds of interleaved passes; pipeline figures the second pass of persistent workers. Asserts nothing
about speed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw

from ops import transforms as T
import ops.frames as frames_module
from ops.dataset import VideoDataset, collate_videos
from ops.frames import load_image
from ops.train_step import grad_scaler, train_step

TMPL = 'img_{:05d}.jpg'
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # TSN's RGB normalisation


def parse_size(text: str) -> tuple[int, int]:
    """``'320x240'`` -> ``(320, 240)`` (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be WIDTHxHEIGHT, e.g. 320x240, got {text!r}') from None
    return w, h


def synthetic_frame(w: int, h: int, t: int, rng: np.random.RandomState, scene: dict) -> Image.Image:
    """One camera-like frame: a drifting colour gradient, sensor noise and shapes moving with ``t``."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (xx * scene['fx'] + yy * scene['fy']) / max(w, h) + 0.03 * t
    img = scene['base'] + scene['amp'] * np.sin(2 * np.pi * phase)[..., None] * scene['tint']
    img += rng.normal(0, 6, img.shape)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for x, y, vx, vy, r, colour, ellipse in scene['shapes']:
        cx, cy = (x + vx * t) % w, (y + vy * t) % h
        box = (cx - r, cy - r * 0.7, cx + r, cy + r * 0.7)
        (draw.ellipse if ellipse else draw.rectangle)(box, fill=colour)
    return pil


def make_frames(cache: str, size: tuple[int, int], videos: int, frames: int, seed: int = 0) -> tuple[str, str]:
    """Write (once) ``videos`` folders of ``frames`` JPEGs of ``size``; returns ``(root, list_file)``."""
    w, h = size
    root = os.path.join(cache, f'{w}x{h}_{videos}x{frames}')
    list_file = os.path.join(root, 'list.txt')
    if os.path.isfile(list_file):  # the list is written last, so an interrupted run is redone
        return root, list_file
    rng = np.random.RandomState(seed)
    lines = []
    for v in range(videos):
        scene = {'fx': rng.uniform(0.3, 2), 'fy': rng.uniform(0.3, 2), 'base': rng.uniform(60, 190, 3),
                 'amp': rng.uniform(30, 60), 'tint': rng.uniform(0.3, 1, 3),
                 'shapes': [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-4, 4), rng.uniform(-3, 3),
                             rng.uniform(0.05, 0.2) * min(w, h), tuple(int(c) for c in rng.randint(0, 256, 3)),
                             bool(rng.randint(2))) for _ in range(rng.randint(2, 6))]}
        folder = os.path.join(root, f'vid_{v:03d}')
        os.makedirs(folder, exist_ok=True)
        for t in range(frames):
            synthetic_frame(w, h, t, rng, scene).save(os.path.join(folder, TMPL.format(t + 1)), quality=90)
        lines.append(f'vid_{v:03d} {frames} 0\n')
    with open(list_file, 'w', encoding='utf-8') as f:
        f.writelines(lines)
    return root, list_file


def list_frames_dir(frames_dir: str, videos: int, frames: int, out_dir: str) -> tuple[str, str]:
    """A list file for the first ``videos`` frame folders of ``frames_dir`` (``img_00001.jpg`` ...)."""
    lines = []
    for name in sorted(os.listdir(frames_dir)):
        folder = os.path.join(frames_dir, name)
        count = sum(f.endswith('.jpg') for f in os.listdir(folder)) if os.path.isdir(folder) else 0
        if count and os.path.isfile(os.path.join(folder, TMPL.format(1))):
            lines.append(f'{name} {min(count, frames)} 0\n')
        if len(lines) == videos:
            break
    if not lines:
        raise SystemExit(f'--frames_dir {frames_dir}: no sub-folder holds {TMPL.format(1)}')
    list_file = os.path.join(out_dir, 'frames_dir_list.txt')
    with open(list_file, 'w', encoding='utf-8') as f:
        f.writelines(lines)
    return frames_dir, list_file


def frame_paths(root: str, list_file: str) -> list[str]:
    """Every frame file of every listed video, in order."""
    paths = []
    with open(list_file, encoding='utf-8') as f:
        for line in f:
            name, count = line.split()[:2]
            paths += [os.path.join(root, name, TMPL.format(i + 1)) for i in range(int(count))]
    return paths


def plain_decode(path: str, target: int) -> Image.Image:
    """The baseline: full-size decode, convert, resize the short side to ``target``."""
    img = Image.open(path).convert('RGB')
    return img.resize(T.short_side_size(*img.size, target), Image.Resampling.BILINEAR)


def our_decode(path: str, target: int) -> Image.Image:
    """``load_image`` with ``resize_short=target``: reduced JPEG decoding and the resize on the decoded array."""
    return load_image(path, 'RGB', resize_short=target)


def our_decode_pillow_resize(path: str, target: int) -> Image.Image:
    """``load_image`` with ``decode_size=target`` (reduced JPEG decoding), then Pillow's resize."""
    img = load_image(path, 'RGB', decode_size=target)
    return img.resize(T.short_side_size(*img.size, target), Image.Resampling.BILINEAR)


def pass_fps(fn: Callable[[str, int], Image.Image], paths: list[str], target: int) -> float:
    """Frames/s of one pass of ``fn`` over ``paths``."""
    start = time.perf_counter()
    for p in paths:
        fn(p, target)
    return len(paths) / (time.perf_counter() - start)


def decoder_section(paths: list[str], target: int, repeat: int) -> dict:
    """(a) plain vs (b) ours on the same frames: frames/s, speed-up, output sizes and mean |difference|.

    ``repeat`` rounds, each one pass of every decoder in turn (the order alternating), so that a slower or
    faster stretch of the machine falls on all of them alike; frames/s are the medians over the rounds, the
    speed-up the median of the rounds' ratios (each round's figures are kept too)."""
    for p in paths:  # read once so both decoders find the files in the OS cache
        Path(p).read_bytes()

    def draft_decode(path: str, size: int) -> Image.Image:  # ours with Pillow's draft mode alone
        fast, frames_module.simplejpeg = frames_module.simplejpeg, None
        try:
            return our_decode(path, size)
        finally:
            frames_module.simplejpeg = fast
    decoders = {'plain': plain_decode, 'ours': our_decode, 'pillow_resize': our_decode_pillow_resize}
    if frames_module.simplejpeg is not None:  # ours used simplejpeg: time Pillow's draft path beside it
        decoders['draft'] = draft_decode
    rounds = {name: [] for name in decoders}
    for name, fn in decoders.items():  # warm-up
        fn(paths[0], target)
    for r in range(repeat):  # the order alternates, so that no decoder always follows the same one
        for name, fn in (list(decoders.items()) if r % 2 == 0 else reversed(decoders.items())):
            rounds[name].append(pass_fps(fn, paths, target))
    plain_fps, ours_fps = statistics.median(rounds['plain']), statistics.median(rounds['ours'])
    draft_fps = statistics.median(rounds['draft']) if 'draft' in rounds else None
    pillow_resize_fps = statistics.median(rounds['pillow_resize'])
    speedups = [o / p for o, p in zip(rounds['ours'], rounds['plain'])]
    sample = paths[:: max(1, len(paths) // 16)]
    pairs = [(np.asarray(plain_decode(p, target), np.float32), np.asarray(our_decode(p, target), np.float32))
             for p in sample]
    same = all(a.shape == b.shape for a, b in pairs)
    with Image.open(paths[0]) as img:
        src = img.size
    reduced = load_image(paths[0], 'RGB', decode_size=target).size
    return {'frames': len(paths), 'src': f'{src[0]}x{src[1]}', 'target': target,
            'decoded': f'{reduced[0]}x{reduced[1]}', 'plain_fps': plain_fps, 'ours_fps': ours_fps,
            'decoder': 'simplejpeg' if frames_module.simplejpeg is not None else 'Pillow draft',
            'draft_fps': draft_fps, 'pillow_resize_fps': pillow_resize_fps,
            'speedup': statistics.median(speedups), 'speedups': speedups, 'rounds': repeat,
            'plain_size': list(pairs[0][0].shape[1::-1]), 'ours_size': list(pairs[0][1].shape[1::-1]),
            'same_size': same,
            'mean_abs_diff': float(np.mean([np.abs(a - b).mean() for a, b in pairs])) if same else None}


def pipeline_seconds(root: str, list_file: str, frames: int, transform, decode_size: int | None,
                     workers: int) -> float:
    """Seconds of one pass over the data set by a warmed-up DataLoader (batch 1, persistent workers); with
    ``decode_size`` the frames are also resized at load to it (``resize_short``), as main.py's validation."""
    ds = VideoDataset(root, list_file, frames=frames, random_shift=False, transform=transform,
                      decode_size=decode_size, resize_short=decode_size)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=collate_videos,
                                         persistent_workers=workers > 0)
    for _ in loader:  # first pass: worker start-up, imports, file cache
        pass
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def pipeline_section(root: str, list_file: str, frames: int, target: int, scale_size: int,
                     workers: list[int]) -> dict:
    """(c) a validation run's loading, full-size decode (plain) vs ours (``decode_size=resize_short=scale_size``:
    reduced decoding where it applies and the resize at load), per worker count."""
    transform = torchvision.transforms.Compose([
        T.val_transform(scale_size, target), T.Stack(), T.ToTorchFormatTensor(), T.GroupNormalize(MEAN, STD)])
    with open(list_file, encoding='utf-8') as f:
        videos = sum(1 for line in f if line.strip())
    decoded = load_image(frame_paths(root, list_file)[0], 'RGB', decode_size=scale_size).size
    rows = []
    for j in workers:
        for name, decode_size in (('plain', None), ('ours', scale_size)):
            sec = pipeline_seconds(root, list_file, frames, transform, decode_size, j)
            rows.append({'decoder': name, 'workers': j, 'frames_per_s': videos * frames / sec,
                         'clips_per_s': videos / sec})
    return {'scale_size': scale_size, 'decode_size': scale_size, 'decoded': f'{decoded[0]}x{decoded[1]}',
            'frames_per_clip': frames, 'rows': rows}


def clip_section(cache: str, clip_size: tuple[int, int], clip_frames: int, img_size: int, repeat: int) -> dict:
    """(d) ms to load one clip of ``clip_frames`` frames through the training pipeline (median of ``repeat``)."""
    root, list_file = make_frames(cache, clip_size, 1, clip_frames, seed=1)
    transform = torchvision.transforms.Compose([
        T.train_augmentation(img_size), T.Stack(), T.ToTorchFormatTensor(), T.GroupNormalize(MEAN, STD)])
    decode_size = T.train_decode_size(img_size)
    ds = VideoDataset(root, list_file, frames=clip_frames, random_shift=True, transform=transform,
                      decode_size=decode_size)
    shape = tuple(ds[0][0].shape)  # warm-up: imports, file cache
    decoded = load_image(os.path.join(root, 'vid_000', TMPL.format(1)), 'RGB', decode_size=decode_size).size
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        ds[0]
        times.append(time.perf_counter() - start)
    return {'size': f'{clip_size[0]}x{clip_size[1]}', 'frames': clip_frames, 'img_size': img_size,
            'decode_size': decode_size, 'decoded': f'{decoded[0]}x{decoded[1]}',
            'shape': list(shape), 'load_ms': 1000 * statistics.median(times)}


def model_section(img_size: int, clip_frames: int, device: torch.device, steps: int = 2) -> list[dict]:
    """ms of a ResNet-50 TSM training step (batch 1, SGD): TSM-8 on 8 frames, cumulative-8 on ``clip_frames``."""
    from ops.models import TSN
    rows = []
    for name, extra, frames in (('tsm-8', {}, 8),
                                ('cumulative-8', {'cluster': 'cumulative', 'num_frames': clip_frames}, clip_frames)):
        torch.manual_seed(0)
        model = TSN(4, 8, 'RGB', base_model='resnet50', pretrain='scratch', is_shift=True, **extra).to(device).train()
        optimizer = torch.optim.SGD(model.get_optim_policies(), 0.01, momentum=0.9)
        scaler = grad_scaler('none', device)
        x = torch.randn(1, 3 * frames, img_size, img_size, device=device)
        labels = torch.zeros(1, dtype=torch.long, device=device)
        times = []
        for i in range(1 + steps):  # one warm-up step allocates gradients and optimizer state
            start = time.perf_counter()
            train_step(model, optimizer, scaler, x, labels, keep_grads=True)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            if i:
                times.append(time.perf_counter() - start)
        rows.append({'name': name, 'frames': frames, 'step_ms': 1000 * statistics.mean(times)})
        del model, optimizer
    return rows


def build_parser() -> argparse.ArgumentParser:
    """The tool's flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--frames_dir', default=None, help='existing frame folders (img_00001.jpg ...), not synthetic')
    p.add_argument('--cache', default=os.path.join(tempfile.gettempdir(), 'benchmark_loader'),
                   help='where synthetic frames are written once and reused')
    p.add_argument('--size', type=parse_size, default=(320, 240), help='synthetic frame size WxH')
    p.add_argument('--videos', type=int, default=8)
    p.add_argument('--frames', type=int, default=32, help='frames per video')
    p.add_argument('--target', type=int, default=112, help='short side the frames are read at (img_size)')
    p.add_argument('--scale_size', type=int, default=None, help='validation short side (default target*256//224)')
    p.add_argument('-j', '--workers', type=int, default=2, help='N of the 1- and N-worker pipeline runs')
    p.add_argument('--repeat', type=int, default=5,
                   help='decoder rounds (one pass of each decoder in turn; medians) and clip loads (median)')
    p.add_argument('--clip_size', type=parse_size, default=(340, 256), help='frame size WxH of the training clip')
    p.add_argument('--clip_frames', type=int, default=32)
    p.add_argument('--img_size', type=int, default=224, help='training crop of the clip and the model input')
    p.add_argument('--skip_model', action='store_true', help='no ResNet-50 steps')
    p.add_argument('--device', default='cpu', help='device of the model steps')
    p.add_argument('--json', action='store_true', help='print one JSON line instead of the table')
    return p


def format_table(res: dict) -> str:
    """The human-readable report."""
    d, pl, c = res['decode'], res['pipeline'], res['clip']
    out = [f"(a, b) {d['frames']} JPEG frames of {d['src']} read at short side {d['target']} "
           f"(ours decodes at {d['decoded']})",
           f"  plain Pillow open+convert+resize  {d['plain_fps']:8.0f} frames/s",
           f"  load_image(resize_short)          {d['ours_fps']:8.0f} frames/s   x{d['speedup']:.2f}"
           f"   ({d['decoder']}; rounds: {' '.join(f'x{r:.2f}' for r in d['speedups'])})",
           f"  its decoding, then Pillow's resize {d['pillow_resize_fps']:7.0f} frames/s   "
           f"x{d['pillow_resize_fps'] / d['plain_fps']:.2f}",
           *([f"  ours with Pillow's draft only     {d['draft_fps']:8.0f} frames/s   "
              f"x{d['draft_fps'] / d['plain_fps']:.2f}"] if d['draft_fps'] else []),
           f"  output {d['ours_size'][0]}x{d['ours_size'][1]} (same size: {d['same_size']}), "
           f"mean |plain - ours| = {d['mean_abs_diff'] if d['mean_abs_diff'] is None else round(d['mean_abs_diff'], 2)}"
           f" of 255",
           f"(c) validation pipeline: val_transform({pl['scale_size']}, {d['target']}), {pl['frames_per_clip']} "
           f"frames/clip, decode_size={pl['decode_size']}: ours decodes at {pl['decoded']}",
           '  workers  decoder  frames/s  clips/s  speed-up']
    base = {r['workers']: r['frames_per_s'] for r in pl['rows'] if r['decoder'] == 'plain'}
    for r in pl['rows']:
        out.append(f"  {r['workers']:7d}  {r['decoder']:7s}  {r['frames_per_s']:8.0f}  {r['clips_per_s']:7.2f}  "
                   f"x{r['frames_per_s'] / base[r['workers']]:.2f}")
    out.append(f"(d) training clip: {c['frames']} frames of {c['size']} -> {c['img_size']} px, decode_size="
               f"{c['decode_size']} (decoded at {c['decoded']}): {c['load_ms']:.0f} ms")
    for m in res['model']:
        out.append(f"  ResNet-50 {m['name']} step on {m['frames']} frames ({res['device']}): {m['step_ms']:.0f} ms"
                   f" = x{m['step_ms'] / c['load_ms']:.1f} the clip load")
    return '\n'.join(out)


def main(argv: list[str] | None = None) -> dict:
    """Run all sections; print the table (or one JSON line) and return the figures."""
    args = build_parser().parse_args(argv)
    scale_size = args.scale_size or T.default_scale_size(args.target)
    os.makedirs(args.cache, exist_ok=True)
    if args.frames_dir:
        root, list_file = list_frames_dir(args.frames_dir, args.videos, args.frames, args.cache)
    else:
        root, list_file = make_frames(args.cache, args.size, args.videos, args.frames)
    res = {'decode': decoder_section(frame_paths(root, list_file), args.target, args.repeat),
           'pipeline': pipeline_section(root, list_file, args.frames, args.target, scale_size,
                                        sorted({1, args.workers})),
           'clip': clip_section(args.cache, args.clip_size, args.clip_frames, args.img_size, args.repeat),
           'model': [] if args.skip_model else model_section(args.img_size, args.clip_frames,
                                                             torch.device(args.device)),
           'device': args.device, 'cpu_threads': torch.get_num_threads()}
    print(json.dumps(res) if args.json else format_table(res))
    return res


if __name__ == '__main__':
    main()
