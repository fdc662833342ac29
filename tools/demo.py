"""Classify one video with a trained checkpoint: top-k classes, a figure, sliding windows, online streaming.

    python tools/demo.py CKPT INPUT [--topk 5] [--out FIG.png] [--window S --stride S] [--out_video V.gif|mp4]
        [--online] [--labels FILE] [--chunk_frames K] [--fps F] [--device cpu|cuda]

INPUT is a video file PyAV reads or a folder of frame images (sorted by the numbers in their names; ``--fps``,
default 25, gives them a time). The model is built from the checkpoint's stored flags and run as it was
validated: frames resized to ``scale_size`` and centre-cropped to ``img_size``; a clustering model sees every
frame (``--frames all``) or F frames spread evenly (``--frames F``), chunked above ``--chunk_frames`` so that long
videos fit; a TSM model sees its ``num_segments`` segment centres.

``--out FIG.png``: one clip: a timeline of the frames with the cluster boundaries and each cluster's length,
a frame of each cluster (TSM: each sampled frame), and the prediction. With ``--window S --stride S``
(seconds): one prediction per window, and the figure is the timeline of the class probabilities.
``--out_video``: the frames with the running prediction drawn on them (GIF or MP4).
``--online`` (an ``--online`` TSM checkpoint): streams the video frame by frame through the uni-directional
shifts with their caches (``ops/temporal_shift.py``), printing the running prediction (mean logits of the last
``num_segments`` frames) and the per-frame latency.
"""
import argparse
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import builder
from ops import transforms as T
from ops.sampling import clip_indices, cluster_indices, val_indices
from ops.runtime import select_device
from ops.temporal_shift import start_stream, stop_stream
from ops.video_io import VideoDecodeError, _video_stream, iter_frames
from tools.export import class_names, load_trained

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


class Video:
    """The frames of INPUT after the validation crop: ``crops`` (T PIL images, img_size square), ``fps``."""

    def __init__(self, crops: List[Image.Image], fps: float, path: str) -> None:
        self.crops, self.fps, self.path = crops, fps, path

    def __len__(self) -> int:
        return len(self.crops)


def video_fps(path: str) -> float:
    """Frames per second of a video file's first stream (25 when the container does not say)."""
    with _video_stream(path) as (_, stream):
        rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 25.0


def frame_files(folder: str) -> List[str]:
    """Image files of ``folder`` ordered by the numbers in their names (``img_9`` before ``img_10``)."""
    def key(name: str):
        return [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', name)]
    names = sorted((n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTS)), key=key)
    if not names:
        raise ValueError(f"{folder}: no frame images ({', '.join(IMAGE_EXTS)}) in the folder")
    return [os.path.join(folder, n) for n in names]


def load_video(path: str, scale_size: int, img_size: int, fps: Optional[float] = None,
               progress: bool = True) -> Video:
    """Decode INPUT and crop each frame as validation does (``val_transform``); errors name the file."""
    crop = T.val_transform(scale_size, img_size)
    if os.path.isdir(path):
        files = frame_files(path)
        frames, rate = ((_open_image(f) for f in files), fps or 25.0)
        total = len(files)
    elif os.path.isfile(path):
        try:
            rate, total = fps or video_fps(path), None
        except VideoDecodeError as err:
            raise ValueError(f"{path}: not a video PyAV can read ({err})") from err
        frames = iter_frames(path)
    else:
        raise FileNotFoundError(f"{path}: no such video file or frame folder")
    crops = []
    try:
        for image in tqdm(frames, total=total, desc='frames', unit='frame', disable=not progress, leave=False):
            crops.append(crop([image.convert('RGB')])[0])
    except VideoDecodeError as err:
        raise ValueError(f"{path}: {err}") from err
    if not crops:
        raise ValueError(f"{path}: no frame could be read")
    return Video(crops, rate, path)


def _open_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert('RGB')
    except OSError as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


def to_tensor(crops: Sequence[Image.Image], model) -> torch.Tensor:
    """T crops -> ``(T*3, H, W)`` normalised as in training (``builder.to_input``)."""
    return builder.to_input(model)(list(crops))


def positions(model, args: argparse.Namespace, num_frames: int) -> Tuple[np.ndarray, int]:
    """The frame indices the model sees, as in validation, and how many are real (not padding)."""
    if model.clustering is None and model.layout.clip:  # a 3D CNN: the centre clip, as main.py validates
        return clip_indices(num_frames, args.num_segments, getattr(args, 'sample_rate', None) or 1, 'val'), args.num_segments
    if model.clustering is None:
        return val_indices(num_frames, args.num_segments, model.new_length), args.num_segments
    return cluster_indices(num_frames, args.frames, random_shift=False)


@torch.no_grad()
def classify(model, args: argparse.Namespace, crops: Sequence[Image.Image],
             device: torch.device) -> Dict[str, Any]:
    """Probabilities ``(K,)`` for one clip; the frame indices used; the cluster of each (None for TSM)."""
    index, length = positions(model, args, len(crops))
    x = to_tensor([crops[i] for i in index], model)[None].to(device)
    lengths = torch.tensor([length], device=device) if model.clustering is not None else None
    probs = model(x, lengths).float().softmax(1)[0].cpu()
    assign = None
    if model.clustering is not None:
        assign = model.clustering.last_assign[0, :length].cpu()
    return {'probs': probs, 'index': index[:length], 'assign': assign}


def top_k(probs: torch.Tensor, names: List[str], k: int) -> List[Tuple[str, float]]:
    values, idx = probs.topk(min(k, probs.numel()))
    return [(names[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]


def windows(num_frames: int, fps: float, window: float, stride: float) -> List[Tuple[int, int]]:
    """``[start, stop)`` frame ranges of ``window`` seconds every ``stride`` seconds (the last one may be short)."""
    size, step = max(1, round(window * fps)), max(1, round(stride * fps))
    starts = list(range(0, max(1, num_frames - size + 1), step))
    if starts[-1] + size < num_frames:
        starts.append(num_frames - size if num_frames > size else 0)
    return [(s, min(num_frames, s + size)) for s in starts]


@torch.no_grad()
def stream(model, video: Video, device: torch.device, names: List[str], history: int,
           progress: bool = True) -> Dict[str, Any]:
    """Frame by frame through an --online model: per-frame logits ``(T, K)``, running probabilities ``(T, K)``
    (softmax of the mean logits of the last ``history`` frames) and per-frame latency in ms."""
    modules = list(model.modules())
    start_stream(modules)
    logits, running, latency = [], [], []
    try:
        for i in tqdm(range(len(video)), desc='online', unit='frame', disable=not progress, leave=False):
            x = to_tensor([video.crops[i]], model)[None].to(device)
            t0 = time.perf_counter()
            out = model.run_late(model.run_early(x.view(1, *x.shape[1:]), 1), 1).float()
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            latency.append(1000 * (time.perf_counter() - t0))
            logits.append(out[0].cpu())
            running.append(torch.stack(logits[-history:]).mean(0).softmax(0))
    finally:
        stop_stream(modules)
    return {'logits': torch.stack(logits), 'running': torch.stack(running), 'latency_ms': latency}


# ------------------------------------------------------------------------------------------------ figures
def _thumbs(fig, grid, row: int, images: Sequence[Image.Image], captions: Sequence[str]) -> None:
    for j, (image, caption) in enumerate(zip(images, captions)):
        ax = fig.add_subplot(grid[row, j])
        ax.imshow(image)
        ax.set_title(caption, fontsize=8)
        ax.axis('off')


def clip_figure(path: str, video: Video, result: Dict[str, Any], names: List[str], title: str) -> None:
    """Timeline of the frames the model saw with the cluster boundaries and lengths (TSM: the sampled
    positions), a frame of each cluster (its middle frame), and the top classes as bars."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    index, assign = result['index'], result['assign']
    used = len(index)
    if assign is not None:  # clusters over the frames the model saw; ids may skip (a short video)
        ids = assign.tolist()
        spans = [(a, b) for a, b in _runs(ids)]
        picks = [index[(a + b - 1) // 2] for a, b in spans]
        captions = [f"cluster {ids[a]}: {b - a} fr\n{index[a] / video.fps:.1f}-{index[b - 1] / video.fps:.1f} s"
                    for a, b in spans]
    else:
        spans, picks = None, list(index)
        captions = [f"frame {i}\n{i / video.fps:.1f} s" for i in index]
    cols = max(len(picks), 1)
    fig = plt.figure(figsize=(max(8.0, 1.3 * cols), 5.2))
    grid = fig.add_gridspec(3, cols, height_ratios=[0.5, 1.6, 1.2], hspace=0.7)
    bar = fig.add_subplot(grid[0, :])
    if spans is not None:
        colours = plt.get_cmap('tab10')
        for j, (a, b) in enumerate(spans):
            bar.axvspan(a, b, color=colours(j % 10), alpha=0.55)
            bar.text((a + b) / 2, 0.5, str(b - a), ha='center', va='center', fontsize=9, fontweight='bold')
            if a:
                bar.axvline(a, color='black', lw=1.5)
        bar.set_xlim(0, used)
        bar.set_title(f"{len(spans)} clusters of the {used} frames the model saw"
                      + ("" if used == len(video) else f" (of {len(video)}, evenly spaced)")
                      + ": boundaries, length in frames", fontsize=9)
    else:
        bar.vlines(index, 0, 1, color='tab:blue', lw=2)
        bar.set_xlim(0, len(video))
        bar.set_title(f"the {used} frames the model saw (segment centres) of {len(video)}", fontsize=9)
    bar.set_yticks([])
    _thumbs(fig, grid, 1, [video.crops[i] for i in picks], captions)
    top = result['top'][::-1]
    ax = fig.add_subplot(grid[2, :])
    ax.barh([n for n, _ in top], [p for _, p in top], color='tab:orange')
    ax.set_xlim(0, 1)
    ax.set_xlabel('probability', fontsize=8)
    for y, (_, p) in enumerate(top):
        ax.text(min(p, 0.88) + 0.01, y, f"{p:.2f}", va='center', fontsize=8)
    fig.suptitle(f"{title}: {result['top'][0][0]} ({result['top'][0][1]:.2f})", fontsize=12, fontweight='bold')
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)


def _runs(ids: Sequence[int]) -> List[Tuple[int, int]]:
    """``[start, stop)`` of each run of equal values."""
    runs, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            runs.append((start, i))
            start = i
    return runs


def timeline_figure(path: str, times: np.ndarray, probs: torch.Tensor, names: List[str], video: Video,
                    title: str, max_classes: int = 8) -> None:
    """Frames along the video, and the probability of each leading class over the video's seconds."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cols = min(8, len(video))
    picks = np.linspace(0, len(video) - 1, cols).round().astype(int)
    fig = plt.figure(figsize=(max(8.0, 1.3 * cols), 5.0))
    grid = fig.add_gridspec(2, cols, height_ratios=[1, 2], hspace=0.35)
    _thumbs(fig, grid, 0, [video.crops[i] for i in picks], [f"{i / video.fps:.1f} s" for i in picks])
    ax = fig.add_subplot(grid[1, :])
    leading = probs.max(0).values.argsort(descending=True)[:max_classes].tolist()
    for k in leading:
        ax.plot(times, probs[:, k].numpy(), marker='o' if len(times) < 40 else None, ms=3, label=names[k])
    ax.set_xlim(0, len(video) / video.fps)
    ax.set_ylim(0, 1)
    ax.set_xlabel('time (s)')
    ax.set_ylabel('class probability')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title, fontsize=12, fontweight='bold')
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)


def write_video(path: str, video: Video, labels: Sequence[Optional[Tuple[str, float]]], size: int = 192) -> None:
    """The frames (upscaled to ``size``) with the prediction each frame has drawn on it: a GIF or an MP4."""
    from PIL import ImageDraw
    frames = []
    for crop, label in zip(video.crops, labels):
        image = crop.resize((size, size), Image.BILINEAR)
        if label is not None:
            draw = ImageDraw.Draw(image)
            draw.rectangle([0, 0, size, 16], fill=(0, 0, 0))
            draw.text((3, 2), f"{label[0]} {label[1]:.2f}", fill=(255, 255, 0))
        frames.append(image)
    if path.lower().endswith('.gif'):
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 / video.fps), loop=0)
        return
    if not path.lower().endswith(('.mp4', '.mkv', '.avi', '.mov')):
        raise ValueError(f"--out_video {path}: expected a .gif or .mp4 file")
    import av
    from fractions import Fraction
    with av.open(path, 'w') as container:
        stream = container.add_stream('mpeg4', rate=Fraction(video.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = size, size, 'yuv420p'
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="classify a video file or frame folder with a trained checkpoint")
    p.add_argument('checkpoint')
    p.add_argument('input', help="video file (PyAV) or folder of frame images")
    p.add_argument('--topk', type=int, default=5)
    p.add_argument('--labels', default=None, help="class file, for checkpoints without stored class names")
    p.add_argument('--out', default=None, help="figure (.png): clusters and prediction, or the window timeline")
    p.add_argument('--out_video', default=None, help="the frames with the running prediction (.gif or .mp4)")
    p.add_argument('--window', type=float, default=None, help="sliding windows of S seconds")
    p.add_argument('--stride', type=float, default=None, help="seconds between windows (default: --window)")
    p.add_argument('--online', action='store_true', help="stream frame by frame (an --online checkpoint)")
    p.add_argument('--chunk_frames', type=int, default=None, help="clustering: early layers in chunks of K frames")
    p.add_argument('--fps', type=float, default=None, help="frame rate of a frame folder (default 25)")
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--no_progress', action='store_true')
    return p


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    cli = build_parser().parse_args(argv)
    device = select_device(cli.device)
    model, args, ckpt = load_trained(cli.checkpoint)
    if cli.chunk_frames is not None:
        model.chunk_frames = cli.chunk_frames
    if cli.online and not getattr(args, 'online', False):
        raise ValueError(f"{cli.checkpoint} was not trained with --online (its shifts look at the next frame): "
                         f"it cannot stream; run without --online")
    if args.modality != 'RGB':
        raise ValueError(f"{cli.checkpoint}: the demo runs RGB models (this one is {args.modality})")
    model.to(device)
    names = class_names(ckpt, model.num_class, cli.checkpoint, cli.labels)
    video = load_video(cli.input, args.scale_size, args.img_size, cli.fps, progress=not cli.no_progress)
    print(f"=> {cli.input}: {len(video)} frames at {video.fps:.3g} fps ({len(video) / video.fps:.1f} s); "
          f"{model.spec()}")
    result: Dict[str, Any] = {'frames': len(video), 'fps': video.fps, 'names': names}
    if cli.online:
        out = stream(model, video, device, names, args.num_segments, progress=not cli.no_progress)
        step = max(1, len(video) // 10)
        for i in list(range(0, len(video), step))[1:] + [len(video) - 1]:
            name, p = top_k(out['running'][i], names, 1)[0]
            print(f"   frame {i:5d} ({i / video.fps:6.2f} s): {name} {p:.3f}  [{out['latency_ms'][i]:.1f} ms]")
        lat = np.array(out['latency_ms'][1:] or out['latency_ms'])
        print(f"online: {len(video)} frames, latency per frame median {np.median(lat):.1f} ms, "
              f"95th percentile {np.percentile(lat, 95):.1f} ms ({1000 / np.median(lat):.0f} frames/s)")
        result.update(out, probs=out['running'][-1])
        running = [top_k(r, names, 1)[0] for r in out['running']]
    elif cli.window:
        spans = windows(len(video), video.fps, cli.window, cli.stride or cli.window)
        probs = []
        for s, e in tqdm(spans, desc='windows', disable=cli.no_progress, leave=False):
            probs.append(classify(model, args, video.crops[s:e], device)['probs'])
        probs_t = torch.stack(probs)
        for (s, e), p in zip(spans, probs_t):
            name, v = top_k(p, names, 1)[0]
            print(f"   {s / video.fps:7.2f}-{e / video.fps:7.2f} s: {name} {v:.3f}")
        result.update(windows=spans, window_probs=probs_t, probs=probs_t.mean(0))
        running = [None] * len(video)
        for (s, e), p in zip(spans, probs_t):  # each frame shows the latest window that holds it
            for i in range(s, e):
                running[i] = top_k(p, names, 1)[0]
    else:
        result.update(classify(model, args, video.crops, device))
        running = [top_k(result['probs'], names, 1)[0]] * len(video)
    result['top'] = top_k(result['probs'], names, cli.topk)
    label = 'mean over windows' if cli.window else 'last frames' if cli.online else 'whole video'
    print(f"top-{len(result['top'])} ({label}):")
    for name, p in result['top']:
        print(f"   {p:.3f}  {name}")
    if cli.out:
        if cli.window or cli.online:
            times = (np.array([(s + e) / 2 for s, e in result['windows']]) / video.fps if cli.window
                     else np.arange(len(video)) / video.fps)
            curves = result['window_probs'] if cli.window else result['running']
            timeline_figure(cli.out, times, curves, names, video, title=os.path.basename(cli.input))
        else:
            clip_figure(cli.out, video, result, names, title=os.path.basename(cli.input))
        print(f"=> figure: {cli.out}")
    if cli.out_video:
        write_video(cli.out_video, video, running)
        print(f"=> video: {cli.out_video}")
    return result


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
