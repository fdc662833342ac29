"""Generate Move4MNIST (paper Sec. 4 "Datasets"; docs/DESIGN.md §4).

Four classes (left, right, up, down): a white MNIST-style digit moves one way over a moving grayscale
background, and runs of distracting frames (black, background only, or another digit standing still)
are interleaved with the target's frames. The per-frame ground truth says which frames are relevant.

    python tools/make_move4mnist.py --out data/move4mnist --num_train 1800 --num_val 600 --seed 0

Writes under --out: ``movingmnist/jpg/{train,val}/{class}_{k}/{i}.jpg`` (i from 0), the lists
``{train,val}_videofolder.txt`` (``path num_frames label``), ``classInd.txt``,
``{train,val}_relevance.txt`` (``path 1101...``: 1 = target frame, 0 = distractor) and ``README.txt``.

Choices that follow the authors' four published examples (measured, see README.txt of the output):
the background fills a 4:3 band with black bars above and below (a UCF-101 frame fitted into the
square, so the whole-frame mean is ~130 while the band's is ~170) and never exceeds 223, so the
white digit is the brightest thing; the target's motion *resumes* after a distractor run (its
position advances only on target frames, as in the examples); JPEGs use libjpeg quality 75.
"""
from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ops.dataset_config import SPECS, class_file_format, list_files, write_class_file
from tools.mnist_digits import MNIST_SIZE, MnistDigits, SyntheticDigits, find_mnist_files

CLASSES = ('left', 'right', 'up', 'down')  # label = index; classInd.txt numbers them from 1
DIRECTIONS = ((0, -1), (0, 1), (-1, 0), (1, 0))  # (dy, dx) of the target's motion per label
TARGET, DIGIT, BLACK, BACKGROUND = 'T', 'D', 'B', 'G'  # kinds of frame in a layout string
KIND_CODES = {'digit': DIGIT, 'black': BLACK, 'background': BACKGROUND}
BG_MAX = 223  # the examples' backgrounds peak at 223 (= 255 * 7/8): the digit (255) stands out
JPEG_QUALITY = 75  # the examples carry libjpeg's quality-75 quantisation tables
VIDEO_ROOT = 'movingmnist/jpg'  # the authors' layout, so their published lists and command run as is
SPLITS = ('train', 'val')
SPEC = SPECS['move4mnist']  # the frame, list and class file names that training reads


@dataclass(frozen=True)
class Settings:
    """What a video looks like. Defaults reproduce the published examples."""
    frames: int = 32
    size: int = 64
    share: tuple[float, float] = (0.375, 0.5625)  # fraction of frames that are distractors
    runs: tuple[int, int] = (5, 8)  # number of distractor runs (each of one kind)
    run_length: tuple[int, int] = (1, 6)  # frames per run
    kinds: tuple[str, ...] = ('digit', 'black', 'background')
    single_chunk: bool = False  # True: all runs in one place, the paper's "consecutive chunk"
    speed: tuple[float, float] = (0.5, 1.0)  # target pixels per target frame
    letterbox: bool = True


def band_rows(size: int, letterbox: bool) -> tuple[int, int]:
    """First row and height of the background band: 4:3 like a UCF-101 frame, or the whole frame."""
    height = round(size * 3 / 4) if letterbox else size
    return (size - height) // 2, height


def sample_layout(rng: np.random.Generator, frames: int = 32, share: tuple[float, float] = (0.375, 0.5625),
                  runs: tuple[int, int] = (5, 8), run_length: tuple[int, int] = (1, 6),
                  kinds: tuple[str, ...] = ('digit', 'black', 'background'),
                  single_chunk: bool = False) -> str:
    """Kind of each frame, a string over T (target), D (still digit), B (black), G (background).

    The distractors cover a share of the frames drawn from ``share``, split into a number of runs
    drawn from ``runs``, each ``run_length`` frames long and of one kind (every kind appears when
    there are enough runs). Runs go into random gaps between target frames; runs sharing a gap touch,
    as in the examples, but never merge into a same-kind run longer than ``run_length[1]``.
    ``single_chunk`` puts all runs into one gap: the paper's "consecutive chunk".
    """
    check_layout(frames, share, runs, run_length)
    n_dis = int(rng.integers(*_distractor_range(frames, share)))
    r_lo, r_hi = max(runs[0], math.ceil(n_dis / run_length[1])), min(runs[1], n_dis // run_length[0])
    n_runs = int(rng.integers(r_lo, r_hi + 1))
    lengths = [run_length[0]] * n_runs
    for _ in range(n_dis - sum(lengths)):
        lengths[int(rng.choice([i for i, n in enumerate(lengths) if n < run_length[1]]))] += 1
    codes = [KIND_CODES[k] for k in kinds]
    run_kinds = [codes[i] for i in rng.permutation(len(codes))][:n_runs]
    run_kinds += [codes[i] for i in rng.integers(0, len(codes), n_runs - len(run_kinds))]
    n_target = frames - n_dis
    for _ in range(1000):
        order = rng.permutation(n_runs)
        gaps = (np.full(n_runs, rng.integers(0, n_target + 1)) if single_chunk
                else np.sort(rng.integers(0, n_target + 1, n_runs)))
        parts = [[] for _ in range(n_target + 1)]
        for gap, i in zip(gaps, order):
            parts[gap].append(run_kinds[i] * lengths[i])
        layout = TARGET.join(''.join(p) for p in parts)
        if _longest_run(layout) <= run_length[1]:
            return layout
    raise ValueError(f'no layout of {n_runs} runs of kinds {kinds} keeps same-kind runs within '
                     f'{run_length[1]} frames')


def _distractor_range(frames: int, share: tuple[float, float]) -> tuple[int, int]:
    """Fewest and one more than the most distractor frames that ``share`` allows."""
    return math.ceil(share[0] * frames), min(math.floor(share[1] * frames), frames - 1) + 1


def check_layout(frames: int, share: tuple[float, float], runs: tuple[int, int],
                 run_length: tuple[int, int]) -> None:
    """Raise ValueError unless every distractor count ``share`` allows can form ``runs`` runs."""
    lo, hi = _distractor_range(frames, share)
    bad = [n for n in range(lo, hi) if max(runs[0], math.ceil(n / run_length[1])) >
           min(runs[1], n // run_length[0])]
    if lo >= hi or bad:
        raise ValueError(f'{frames} frames with share {share} give {lo}..{hi - 1} distractor frames; '
                         f'{bad or "none"} of them cannot form {runs} runs of {run_length} frames '
                         f'(set --share, --runs, --run_length)')


def _longest_run(layout: str) -> int:
    """Longest stretch of one distractor kind."""
    return max((len(list(g)) for kind, g in itertools.groupby(layout) if kind != TARGET), default=0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Zero-mean unit-variance noise, smooth over ``cell`` pixels (bicubic upsampling)."""
    coarse = rng.standard_normal((math.ceil(shape[0] / cell) + 2, math.ceil(shape[1] / cell) + 2))
    img = Image.fromarray(coarse.astype(np.float32), mode='F')
    fine = np.asarray(img.resize((shape[1], shape[0]), Image.BICUBIC), dtype=float)
    return (fine - fine.mean()) / (fine.std() + 1e-6)


def _soft_box(yy: np.ndarray, xx: np.ndarray, y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
    """Coverage of an axis-aligned box with a one-pixel anti-aliased edge."""
    return (np.clip(np.minimum(yy - y0, y1 - yy) + 0.5, 0, 1) *
            np.clip(np.minimum(xx - x0, x1 - xx) + 0.5, 0, 1))


def procedural_background(rng: np.random.Generator, frames: int = 32, size: int = 64,
                          letterbox: bool = True) -> np.ndarray:
    """A moving texture standing in for a UCF-101 video, (frames, size, size) uint8.

    A lit wall of smooth noise (sometimes striped) with dark fixed structures, seen by a slowly
    panning camera, plus an object crossing the scene; band mean ~170, at most ``BG_MAX``.
    """
    top, height = band_rows(size, letterbox)
    pan = rng.uniform(0.1, 0.5) * np.array([math.sin(a := rng.uniform(0, 2 * math.pi)), math.cos(a)])
    pad = math.ceil(np.abs(pan).max() * (frames - 1)) + 2
    ch, cw = height + 2 * pad, size + 2 * pad
    yy, xx = np.mgrid[0:ch, 0:cw].astype(float)
    scene = (12 * _smooth_noise(rng, (ch, cw), 16) + 5 * _smooth_noise(rng, (ch, cw), 5)
             + rng.uniform(-0.4, 0.4) * (xx - cw / 2) + rng.uniform(-0.4, 0.4) * (yy - ch / 2))
    if rng.random() < 0.5:  # wallpaper, blinds, tiles
        theta, period = rng.uniform(0, math.pi), rng.uniform(4, 14)
        scene += rng.uniform(6, 18) * np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta))
                                             / period + rng.uniform(0, 2 * math.pi))
    for _ in range(int(rng.integers(2, 5))):  # door frames, furniture, shelves
        if rng.random() < 0.6:
            x0 = rng.uniform(0, cw - 3)
            box = (rng.uniform(-5, ch / 2), ch + 5, x0, x0 + rng.uniform(3, 14))
        else:
            y0, x0 = rng.uniform(0, ch - 3), rng.uniform(-10, cw / 2)
            box = (y0, y0 + rng.uniform(3, 12), x0, x0 + rng.uniform(10, cw))
        cover = _soft_box(yy, xx, *box)
        value = rng.uniform(-150, -60) + 6 * _smooth_noise(rng, (ch, cw), 4)
        scene = scene * (1 - cover) + value * cover
    scene += rng.uniform(165, 190) - scene.mean()  # the examples' band mean is ~173

    size_obj = rng.uniform([8, 4], [18, 9])  # (half-height, half-width) of the crossing object
    start = rng.uniform([0, 0], [height, size])
    velocity = rng.uniform(0.3, 1.0) * np.array([math.sin(b := rng.uniform(0, 2 * math.pi)), math.cos(b)])
    obj_value, fy, fx = rng.uniform(30, 130), *np.mgrid[0:height, 0:size].astype(float)
    out = np.zeros((frames, size, size), np.uint8)
    for t in range(frames):
        oy, ox = pad + pan * (t - (frames - 1) / 2)
        y0, x0 = int(math.floor(oy)), int(math.floor(ox))
        wy, wx = oy - y0, ox - x0
        crop = sum(w * scene[y0 + i:y0 + i + height, x0 + j:x0 + j + size]
                   for i, j, w in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx),
                                   (1, 0, wy * (1 - wx)), (1, 1, wy * wx)))
        cy, cx = start + velocity * t + [math.sin(t / 2), 0]
        r = np.sqrt(((fy - cy) / size_obj[0]) ** 2 + ((fx - cx) / size_obj[1]) ** 2)
        cover = np.clip((1 - r) * size_obj[1], 0, 1)
        crop = crop * (1 - cover) + obj_value * cover + rng.normal(0, 1.5, crop.shape)
        out[t, top:top + height] = np.clip(crop, 0, BG_MAX).round()
    return out


def load_background_video(path: str | Path, size: int = 64, letterbox: bool = True,
                          max_frames: int = 2000) -> np.ndarray:
    """Frames of a real video (PyAV), grayscale, fitted into the band, (T, size, size) uint8.

    The picture is scaled to cover the band and centre-cropped, its levels scaled by BG_MAX / 255
    (the examples' backgrounds peak there), so the white digit stays the brightest thing. Only the
    first ``max_frames`` frames are kept; each Move4MNIST video takes a random window of them.
    """
    import av  # only this option needs PyAV
    top, height = band_rows(size, letterbox)
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            img = frame.to_image().convert('L')
            scale = max(size / img.width, height / img.height)
            w, h = max(size, round(img.width * scale)), max(height, round(img.height * scale))
            img = img.resize((w, h), Image.BILINEAR)
            x0, y0 = (w - size) // 2, (h - height) // 2
            band = np.asarray(img.crop((x0, y0, x0 + size, y0 + height)), dtype=float)
            full = np.zeros((size, size), np.uint8)
            full[top:top + height] = (band * BG_MAX / 255).round()
            frames.append(full)
            if len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f'{path}: no video frames decoded')
    return np.stack(frames)


def _paste(frame: np.ndarray, digit: np.ndarray, y: int, x: int) -> None:
    """Alpha-blend a white digit (its intensity is the alpha) onto ``frame`` at (y, x), in place."""
    region = frame[y:y + digit.shape[0], x:x + digit.shape[1]].astype(float)
    alpha = digit.astype(float) / 255
    frame[y:y + digit.shape[0], x:x + digit.shape[1]] = (region + (255 - region) * alpha).round()


def make_video(rng: np.random.Generator, label: int, digits, settings: Settings = Settings(),
               background_video: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """One Move4MNIST video: frames (F, S, S) uint8 and relevance (F,) of 0/1 (1 = target frame).

    ``digits.sample(rng, d)`` gives a (28, 28) digit. The target digit's position advances one step
    per target frame (motion resumes after a distractor run); a second digit of another class stands
    still in all 'digit' distractor frames. Both stay wholly inside the frame. A background video
    shorter than ``settings.frames`` is looped.
    """
    s = settings
    layout = sample_layout(rng, s.frames, s.share, s.runs, s.run_length, s.kinds, s.single_chunk)
    if background_video is None:
        background = procedural_background(rng, s.frames, s.size, s.letterbox)
    else:
        first = int(rng.integers(0, max(len(background_video) - s.frames, 0) + 1))
        background = background_video[(first + np.arange(s.frames)) % len(background_video)]
    target_class = int(rng.integers(10))
    other_class = (target_class + int(rng.integers(1, 10))) % 10
    target, other = digits.sample(rng, target_class), digits.sample(rng, other_class)

    span = s.size - MNIST_SIZE
    steps = max(layout.count(TARGET) - 1, 1)
    speed = min(rng.uniform(*s.speed), span / steps)
    along = rng.uniform(0, span - speed * steps) + speed * np.arange(steps + 1)
    dy, dx = DIRECTIONS[label]
    if dy + dx < 0:  # left or up: start at the far side
        along = span - along
    across = np.full_like(along, rng.integers(0, span + 1))
    ys, xs = (along, across) if dy else (across, along)
    still_y, still_x = rng.integers(0, span + 1, 2)

    out, k = np.zeros((s.frames, s.size, s.size), np.uint8), 0
    for t, kind in enumerate(layout):
        if kind == BLACK:
            continue
        out[t] = background[t]
        if kind == TARGET:
            _paste(out[t], target, int(round(ys[k])), int(round(xs[k])))
            k += 1
        elif kind == DIGIT:
            _paste(out[t], other, int(still_y), int(still_x))
    return out, [int(kind == TARGET) for kind in layout]


def video_name(index: int) -> tuple[str, int]:
    """Name and label of the index-th video of a split: classes round-robin, ``{class}_{k}``."""
    label = index % len(CLASSES)
    return f'{CLASSES[label]}_{index // len(CLASSES)}', label


_WORKER: dict = {}


def _init_worker(out: str, seed: int, settings: Settings, mnist: str | None,
                 background_video: str | None) -> None:
    """Load the digit sources and the background video once per process."""
    _WORKER.update(out=Path(out), seed=seed, settings=settings, digits=_digit_sources(mnist)[0],
                   background=(None if background_video is None else
                               load_background_video(background_video, settings.size, settings.letterbox)))


def _digit_sources(mnist: str | None) -> tuple[dict, dict]:
    """Digit source per split and its description: MNIST train for train, t10k (if present) for val."""
    if mnist is None:
        source = SyntheticDigits()
        return {s: source for s in SPLITS}, {s: source.description for s in SPLITS}
    train = MnistDigits(mnist, 'train')
    val = MnistDigits(mnist, 't10k') if find_mnist_files(mnist, 't10k') else train
    return {'train': train, 'val': val}, {'train': train.description, 'val': val.description}


def _make_and_write(task: tuple[str, int]) -> tuple[str, int, str, int, str]:
    """Generate video ``index`` of ``split`` from its own seed and write its JPEGs."""
    split, index = task
    w = _WORKER
    rng = np.random.default_rng(np.random.SeedSequence([w['seed'], SPLITS.index(split), index]))
    name, label = video_name(index)
    frames, relevance = make_video(rng, label, w['digits'][split], w['settings'], w['background'])
    folder = w['out'] / VIDEO_ROOT / split / name
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame, mode='L').save(folder / SPEC.rgb_tmpl.format(i + SPEC.start_index), quality=JPEG_QUALITY)
    return split, index, f'{VIDEO_ROOT}/{split}/{name}', label, ''.join(map(str, relevance))


def generate(out: str | Path, num_train: int, num_val: int, seed: int, settings: Settings = Settings(),
             mnist: str | None = None, background_video: str | None = None, workers: int = 1) -> None:
    """Write the whole data set under ``out``; the same arguments give the same bytes for any ``workers``."""
    if settings.size < MNIST_SIZE + 4 or settings.frames < 2:
        raise ValueError(f'size {settings.size} / frames {settings.frames}: expected size >= '
                         f'{MNIST_SIZE + 4} and frames >= 2')
    check_layout(settings.frames, settings.share, settings.runs, settings.run_length)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    init = (str(out), seed, settings, mnist, background_video)
    _, descriptions = _digit_sources(mnist)  # fail early on a bad --mnist folder
    tasks = [('train', i) for i in range(num_train)] + [('val', i) for i in range(num_val)]
    if workers > 1:
        with multiprocessing.Pool(workers, _init_worker, init) as pool:
            results = list(tqdm(pool.imap(_make_and_write, tasks, chunksize=4), total=len(tasks),
                                desc='Move4MNIST', unit='video'))
    else:
        _init_worker(*init)
        results = [_make_and_write(t) for t in tqdm(tasks, desc='Move4MNIST', unit='video')]
    for split, list_name in zip(SPLITS, list_files('move4mnist')):
        rows = sorted((r for r in results if r[0] == split), key=lambda r: (r[3], r[1] // len(CLASSES)))
        (out / list_name).write_text(
            ''.join(f'{path} {settings.frames} {label}\n' for _, _, path, label, _ in rows))
        (out / f'{split}_relevance.txt').write_text(''.join(f'{r[2]} {r[4]}\n' for r in rows))
    write_class_file(str(out), list(CLASSES), class_file_format('move4mnist'))
    _write_readme(out, num_train, num_val, seed, settings, descriptions, background_video)


def _write_readme(out: Path, num_train: int, num_val: int, seed: int, settings: Settings,
                  descriptions: dict, background_video: str | None) -> None:
    lines = ['Move4MNIST, generated by tools/make_move4mnist.py (paper Sec. 4); the list, frame and relevance',
             'formats are described in docs/DESIGN.md, section 4, of the repository that holds that tool.',
             f'seed {seed}; {num_train} train and {num_val} val videos, classes round-robin.',
             'settings: ' + ', '.join(f'{k}={v}' for k, v in asdict(settings).items()),
             f'digits: train: {descriptions["train"]}; val: {descriptions["val"]}',
             'background: ' + (f'frames of {background_video} (grayscale, scaled by {BG_MAX}/255)'
                               if background_video else 'procedural moving texture (no video)'),
             'motion: the target advances only on target frames (it resumes after distractors).',
             'lists: path num_frames label (0-based; classInd.txt numbers classes from 1).',
             'relevance: path then one character per frame, 1 = target frame, 0 = distractor.',
             f'frames: {VIDEO_ROOT}/<split>/<class>_<k>/<i>.jpg, i from 0, JPEG quality {JPEG_QUALITY}.']
    (out / 'README.txt').write_text('\n'.join(lines) + '\n')


def read_relevance(path: str | Path) -> dict[str, list[int]]:
    """Per-frame ground truth of a ``*_relevance.txt`` file: video path -> [0/1 per frame]."""
    table = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or set(parts[1]) - {'0', '1'}:
            raise ValueError(f'{path}:{n}: {line!r}, expected "path 0110..." (one 0/1 per frame)')
        table[parts[0]] = [int(c) for c in parts[1]]
    return table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Settings()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', required=True, help='output folder (the data set root)')
    p.add_argument('--num_train', type=int, required=True)
    p.add_argument('--num_val', type=int, required=True)
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--frames', type=int, default=d.frames)
    p.add_argument('--size', type=int, default=d.size)
    p.add_argument('--mnist', help='folder with MNIST idx files (or torchvision MNIST root); '
                                   'default: synthetic digits, no download')
    p.add_argument('--background_video', help='real video whose frames are the background (PyAV)')
    p.add_argument('-j', '--workers', type=int, default=1)
    p.add_argument('--share', type=float, nargs=2, default=d.share, help='distractor share range')
    p.add_argument('--runs', type=int, nargs=2, default=d.runs, help='number of distractor runs range')
    p.add_argument('--run_length', type=int, nargs=2, default=d.run_length, help='frames per run range')
    p.add_argument('--kinds', nargs='+', default=d.kinds, choices=sorted(KIND_CODES))
    p.add_argument('--single_chunk', action='store_true', help="all runs in one place (the paper's text)")
    p.add_argument('--speed', type=float, nargs=2, default=d.speed, help='pixels per target frame range')
    p.add_argument('--no_letterbox', action='store_true', help='background fills the whole frame')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    settings = Settings(a.frames, a.size, tuple(a.share), tuple(a.runs), tuple(a.run_length),
                        tuple(a.kinds), a.single_chunk, tuple(a.speed), not a.no_letterbox)
    generate(a.out, a.num_train, a.num_val, a.seed, settings, a.mnist, a.background_video, a.workers)


if __name__ == '__main__':
    main()
