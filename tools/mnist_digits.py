"""Digit sources for Move4MNIST: real MNIST read from idx files, or offline synthetic handwriting.

Both give 28x28 uint8 digits in MNIST's convention (white ink on black, the ink fitted into a
20x20 box and centred by its centre of mass), through ``sample(rng, digit) -> (28, 28) uint8``.
"""
from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

MNIST_SIZE = 28
INK_BOX = 20  # MNIST fits each digit into 20x20 and centres it in 28x28 (LeCun et al.)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


# ----------------------------------------------------------------------------------------------
# Real MNIST
# ----------------------------------------------------------------------------------------------

def read_idx(path: str | Path) -> np.ndarray:
    """Parse an idx file (the MNIST container format), gzipped when its name ends in ``.gz``.

    Layout: 2 zero bytes, a dtype code, the number of dimensions n, n big-endian uint32 sizes, data.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == '.gz' else open
    with opener(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f'{path}: not an idx file (magic bytes {raw[:4].hex()}, expected 0000 + '
                         f'dtype code in {sorted(_IDX_DTYPES)} + ndim)')
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw, '>u4', count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + dtype.itemsize * math.prod(shape)
    if len(raw) != expected:
        raise ValueError(f'{path}: {len(raw)} bytes, expected {expected} for shape {shape} of {dtype}')
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder('='))


def find_mnist_files(root: str | Path, split: str = 'train') -> tuple[Path, Path] | None:
    """Images and labels files of ``split`` ('train' or 't10k') under ``root``, or None.

    Looks in ``root``, ``root/raw`` and ``root/MNIST/raw`` (torchvision's layout), plain or ``.gz``.
    """
    root = Path(root)
    for folder in (root, root / 'raw', root / 'MNIST' / 'raw'):
        found = [next((p for p in (folder / name, folder / f'{name}.gz') if p.is_file()), None)
                 for name in (f'{split}-images-idx3-ubyte', f'{split}-labels-idx1-ubyte')]
        if None not in found:
            return found[0], found[1]
    return None


class MnistDigits:
    """Digits drawn from real MNIST images of one split."""

    def __init__(self, root: str | Path, split: str = 'train') -> None:
        files = find_mnist_files(root, split)
        if files is None:
            raise FileNotFoundError(f'{root}: no {split}-images-idx3-ubyte[.gz] and '
                                    f'{split}-labels-idx1-ubyte[.gz] in it, raw/ or MNIST/raw/')
        images, labels = read_idx(files[0]), read_idx(files[1])
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise ValueError(f'{files[0]}: images {images.shape} do not match labels {labels.shape} '
                             f'of {files[1]}')
        self.images = images.astype(np.uint8)
        self.by_class = [np.flatnonzero(labels == d) for d in range(10)]
        missing = [d for d in range(10) if len(self.by_class[d]) == 0]
        if missing:
            raise ValueError(f'{files[1]}: no images of digit(s) {missing}')
        self.description = f'MNIST {split} images from {files[0]}'

    def sample(self, rng: np.random.Generator, digit: int) -> np.ndarray:
        """A random MNIST image of ``digit``, (28, 28) uint8."""
        return self.images[rng.choice(self.by_class[digit])]


# ----------------------------------------------------------------------------------------------
# Synthetic handwriting: strokes in a unit box (x right, y down), jittered, rendered anti-aliased
# ----------------------------------------------------------------------------------------------

def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24) -> np.ndarray:
    """Points of an elliptic arc; angles in degrees, y down, so increasing angle turns clockwise."""
    a = np.radians(np.linspace(a0, a1, n))
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1)


def _line(*pts: tuple[float, float]) -> np.ndarray:
    return np.asarray(pts, dtype=float)


def _chaikin(pts: np.ndarray, iterations: int = 2) -> np.ndarray:
    """Corner cutting, so a few control points give a smooth pen path; keeps the end points."""
    for _ in range(iterations):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        pts = np.concatenate([pts[:1], np.stack([q, r], 1).reshape(-1, 2), pts[-1:]])
    return pts


def digit_strokes(digit: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Pen strokes of ``digit`` (a list of (K, 2) polylines in the unit box), with style variants."""
    v = rng.random()  # picks a variant where a digit has common alternative shapes
    if digit == 0:
        start = rng.uniform(200, 300)
        return [_arc(0.5, 0.5, rng.uniform(0.25, 0.34), 0.48, start, start + rng.uniform(365, 390), 40)]
    if digit == 1:
        strokes = [_line((0.56, 0.0), (0.46, 1.0))]
        if v < 0.4:
            strokes.append(_chaikin(_line((0.33, 0.22), (0.47, 0.1), (0.56, 0.0)), 1))
        return strokes
    if digit == 2:
        top = _arc(0.5, 0.3, 0.3, 0.28, 195, 390)
        tail = _chaikin(_line(tuple(top[-1]), (0.42, 0.68), (0.18, 0.98)), 1)
        base = _line((0.18, 0.98), (0.84, 0.95)) if v < 0.7 else _chaikin(
            _line((0.18, 0.98), (0.3, 0.84), (0.45, 0.95), (0.86, 0.96)), 2)
        return [np.concatenate([top, tail, base])]
    if digit == 3:
        up = _arc(0.47, 0.26, 0.27, 0.25, 200, 450)
        low = _arc(0.47, 0.73, 0.31, 0.27, 265, 515)
        return [np.concatenate([up, low])]
    if digit == 4:
        if v < 0.5:  # closed 4: one stroke down-left, across, then the stem
            return [_line((0.62, 0.0), (0.14, 0.66), (0.88, 0.66)), _line((0.64, 0.12), (0.62, 1.0))]
        return [_line((0.24, 0.0), (0.18, 0.58), (0.86, 0.56)), _line((0.7, 0.05), (0.66, 1.0))]
    if digit == 5:
        top = _line((0.8, 0.0), (0.32, 0.02), (0.26, 0.44))
        bowl = _arc(0.48, 0.68, 0.31, 0.29, 230, 500)
        return [np.concatenate([top, bowl])]
    if digit == 6:
        hook = _chaikin(_line((0.72, 0.0), (0.42, 0.2), (0.24, 0.5), (0.22, 0.72)), 2)
        loop = _arc(0.49, 0.72, 0.27, 0.27, 180, 180 + rng.uniform(330, 370))
        return [np.concatenate([hook, loop])]
    if digit == 7:
        strokes = [_chaikin(_line((0.14, 0.03), (0.86, 0.0), (0.6, 0.45), (0.42, 1.0)), 1)]
        if v < 0.25:
            strokes.append(_line((0.34, 0.5), (0.78, 0.48)))
        return strokes
    if digit == 8:
        start = rng.uniform(240, 300)
        return [_arc(0.5, 0.25, 0.23, 0.24, start, start + 360, 32),
                _arc(0.5, 0.73, 0.29, 0.27, 270, 270 + 365, 36)]
    if digit == 9:
        loop = _arc(0.48, 0.29, 0.27, 0.28, 0, 370, 36)
        stem = _chaikin(_line((0.76, 0.3), (0.73, 0.7), (0.66, 1.0)), 1) if v < 0.6 else \
            _line((0.76, 0.3), (0.74, 1.0))
        return [np.concatenate([loop, stem])]
    raise ValueError(f'digit {digit}: expected 0..9')


def _segments_distance(points: np.ndarray, strokes: list[np.ndarray]) -> np.ndarray:
    """Distance from each of (P, 2) points to the nearest segment of the strokes, (P,)."""
    a = np.concatenate([s[:-1] for s in strokes])
    b = np.concatenate([s[1:] for s in strokes])
    ab = b - a
    ap = points[:, None, :] - a[None]
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    nearest = a[None] + t[..., None] * ab[None]
    return np.sqrt(((points[:, None, :] - nearest) ** 2).sum(-1)).min(1)


def render_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic handwritten ``digit``, (28, 28) uint8, MNIST-normalised.

    Random slant, aspect, rotation, smooth elastic warp of the pen path and stroke width; the
    stroke is anti-aliased by a one-pixel linear ramp of its distance field.
    """
    strokes = [s - 0.5 for s in digit_strokes(digit, rng)]
    slant = rng.uniform(-0.35, 0.15)  # x += slant * y; y points down, so < 0 leans right
    angle = np.radians(rng.uniform(-8, 8))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    scale = np.array([rng.uniform(0.8, 1.2), rng.uniform(0.9, 1.1)])
    freq = rng.normal(0.0, 1.2, (2, 3, 2))
    phase, amp = rng.uniform(0, 2 * np.pi, (2, 3)), rng.uniform(0.01, 0.025, (2, 3))

    def warp(p: np.ndarray) -> np.ndarray:
        p = p * scale
        p = np.stack([p[:, 0] + slant * p[:, 1], p[:, 1]], 1) @ rot.T
        wob = [(amp[i] * np.sin(2 * np.pi * p @ freq[i].T + phase[i])).sum(1) for i in range(2)]
        return p + np.stack(wob, 1)

    strokes = [warp(s) for s in strokes]
    width = rng.uniform(2.0, 3.6)  # pen width in pixels; MNIST strokes are about 2-4 px
    allpts = np.concatenate(strokes)
    lo, hi = allpts.min(0), allpts.max(0)
    fit = (INK_BOX - width) / max((hi - lo).max(), 1e-6)
    centre = MNIST_SIZE / 2
    strokes = [(s - (lo + hi) / 2) * fit + centre for s in strokes]

    ys, xs = np.mgrid[0:MNIST_SIZE, 0:MNIST_SIZE] + 0.5
    dist = _segments_distance(np.stack([xs.ravel(), ys.ravel()], 1), strokes)
    ink = np.clip(width / 2 + 0.5 - dist, 0.0, 1.0).reshape(MNIST_SIZE, MNIST_SIZE)
    return _centre_of_mass_to_centre((ink * 255).round().astype(np.uint8))


def _centre_of_mass_to_centre(img: np.ndarray) -> np.ndarray:
    """Shift by whole pixels so the ink's centre of mass lies at the image centre, as MNIST does."""
    w = img.astype(float)
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    dy = int(round(img.shape[0] / 2 - 0.5 - (w * ys).sum() / w.sum()))
    dx = int(round(img.shape[1] / 2 - 0.5 - (w * xs).sum() / w.sum()))
    out = np.zeros_like(img)
    h, wd = img.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):wd + min(dx, 0)] = \
        img[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):wd + min(-dx, 0)]
    return out


class SyntheticDigits:
    """Offline digit source: every sample is freshly drawn by ``render_digit``."""

    description = 'synthetic stroke-rendered digits (tools/mnist_digits.py, no download)'

    def sample(self, rng: np.random.Generator, digit: int) -> np.ndarray:
        return render_digit(digit, rng)
