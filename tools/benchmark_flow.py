"""Frame pairs per second of tools/extract_flow.py's flow algorithms on synthetic frames (docs/PERFORMANCE.md).

    python tools/benchmark_flow.py --width 320 --height 240 --pairs 10 --threads 2

The frames: a smooth random texture panning 1.5 px right and 0.5 px down a frame, with a bright square
moving 4 px left. Only the flow is timed (no decoding, no JPEG writing), after one warm-up pair.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from PIL import Image, ImageFilter

from tools.extract_flow import ALGOS, compute_flow, flow_algorithm


def synthetic_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` grey ``(height, width)`` uint8 frames of the moving scene described above."""
    margin = count * 2 + 8
    noise = np.random.default_rng(seed).integers(0, 256, (height + 2 * margin, width + 2 * margin), np.uint8)
    scene = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3)), np.float32)
    scene = np.clip((scene - scene.mean()) * 5 + 128, 0, 255).astype(np.uint8)
    side = max(4, min(width, height) // 6)
    frames = []
    for t in range(count):
        y, x = margin - t // 2, margin - (3 * t) // 2
        frame = scene[y:y + height, x:x + width].copy()
        left = max(0, width // 2 - 4 * t)
        frame[height // 2 - side // 2:height // 2 + side // 2, left:left + side] = 250
        frames.append(frame)
    return frames


def pairs_per_second(algo: str, frames: list[np.ndarray]) -> float:
    """Flow of each consecutive pair of ``frames`` (the first pair a warm-up, not timed)."""
    algorithm = flow_algorithm(algo)
    compute_flow(algorithm, frames[0], frames[1])
    start = time.perf_counter()
    for prev, nxt in zip(frames[1:], frames[2:]):
        compute_flow(algorithm, prev, nxt)
    return (len(frames) - 2) / (time.perf_counter() - start)


def main(argv=None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--width', type=int, default=320)
    p.add_argument('--height', type=int, default=240)
    p.add_argument('--pairs', type=int, default=10, help='timed frame pairs per algorithm (default 10)')
    p.add_argument('--threads', type=int, default=None, help="OpenCV's threads (default: its own, one a core)")
    p.add_argument('--algo', nargs='+', choices=ALGOS, default=list(ALGOS))
    args = p.parse_args(argv)
    if args.pairs < 1 or min(args.width, args.height) < 16:
        p.error('--pairs must be >= 1 and the frames at least 16x16')
    import cv2
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    frames = synthetic_frames(args.width, args.height, args.pairs + 2)
    result = {}
    for algo in args.algo:
        result[algo] = pairs_per_second(algo, frames)
        print(f'{algo}: {result[algo]:.2f} frame pairs/s at {args.width}x{args.height} '
              f'({cv2.getNumThreads()} OpenCV threads, {os.cpu_count()} cores)', flush=True)
    return result


if __name__ == '__main__':
    main()
