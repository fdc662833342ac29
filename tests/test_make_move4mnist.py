"""tools/make_move4mnist.py and tools/mnist_digits.py: layout, ground truth, labels, determinism, sources."""
import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.make_move4mnist import (BG_MAX, CLASSES, KIND_CODES, TARGET, main, read_relevance,
                                   sample_layout)
from tools.mnist_digits import MnistDigits, read_idx, render_digit

ROOT = Path(__file__).resolve().parent.parent
DIGIT_LEVEL = 240  # backgrounds stay <= BG_MAX (223), the digit's core is 255


def _generate(out: Path, *extra: str, train: int = 8, val: int = 4, seed: int = 0) -> Path:
    main(['--out', str(out), '--num_train', str(train), '--num_val', str(val), '--seed', str(seed),
          *extra])
    return out


def _frames(root: Path, video: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(root / video / f'{i}.jpg')) for i in range(32)])


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp('m4') / 'data')


def test_layout_lists_and_frames(dataset):
    assert (dataset / 'classInd.txt').read_text() == '1 left\n2 right\n3 up\n4 down\n'
    assert 'seed 0' in (dataset / 'README.txt').read_text()
    for split, count in (('train', 8), ('val', 4)):
        lines = (dataset / f'{split}_videofolder.txt').read_text().splitlines()
        assert len(lines) == count
        labels = []
        for line in lines:
            path, num_frames, label = line.split(' ')
            cls, k = Path(path).name.rsplit('_', 1)
            assert path == f'movingmnist/jpg/{split}/{cls}_{k}' and num_frames == '32'
            assert CLASSES.index(cls) == int(label)
            labels.append(int(label))
            names = sorted(p.name for p in (dataset / path).iterdir())
            assert names == sorted(f'{i}.jpg' for i in range(32))
            with Image.open(dataset / path / '0.jpg') as img:
                assert img.mode == 'L' and img.size == (64, 64)
        assert np.bincount(labels, minlength=4).tolist() == [count // 4] * 4  # round-robin balance


def test_relevance_matches_frames(dataset):
    for split in ('train', 'val'):
        relevance = read_relevance(dataset / f'{split}_relevance.txt')
        listed = [l.split()[0] for l in (dataset / f'{split}_videofolder.txt').read_text().splitlines()]
        assert sorted(relevance) == sorted(listed)
        for video, bits in relevance.items():
            assert len(bits) == 32 and 0 in bits and 1 in bits
            assert 0.3 <= bits.count(0) / 32 <= 0.6
            frames = _frames(dataset, video)
            for frame, bit in zip(frames, bits):
                if bit:  # an informative frame shows the background and the white digit
                    assert frame.max() == 255 and (frame > DIGIT_LEVEL).sum() >= 15
            means = frames.reshape(32, -1).mean(1)
            assert 100 < means[means > 0].mean() < 160  # the examples' non-black frames: ~130


def test_digit_moves_in_labelled_direction(dataset):
    """The centroid of the bright pixels over the informative frames moves the labelled way."""
    for split in ('train', 'val'):
        labels = {l.split()[0]: int(l.split()[2])
                  for l in (dataset / f'{split}_videofolder.txt').read_text().splitlines()}
        for video, bits in read_relevance(dataset / f'{split}_relevance.txt').items():
            frames = _frames(dataset, video)[np.array(bits) == 1]
            centres = np.array([np.argwhere(f > DIGIT_LEVEL).mean(0) for f in frames])  # (y, x)
            dy, dx = centres[-1] - centres[0]
            want = {0: -dx, 1: dx, 2: -dy, 3: dy}[labels[video]]
            across = abs(dy) if labels[video] < 2 else abs(dx)
            assert want >= 4 and across <= 2, (video, dy, dx)


def test_black_distractors_are_black(tmp_path):
    data = _generate(tmp_path / 'black', '--kinds', 'black', train=4, val=0)
    for video, bits in read_relevance(data / 'train_relevance.txt').items():
        frames = _frames(data, video)
        assert all((f.max() == 0) == (b == 0) for f, b in zip(frames, bits))


def test_same_seed_same_bytes_any_workers(tmp_path, dataset):
    again = _generate(tmp_path / 'again', '-j', '2')
    assert _tree_digest(again) == _tree_digest(dataset)
    other = _generate(tmp_path / 'other', seed=1)
    digest = _tree_digest(other)
    assert digest.keys() == _tree_digest(dataset).keys() and digest != _tree_digest(dataset)


def test_script_runs_from_command_line(tmp_path):
    out = tmp_path / 'cli'
    subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_move4mnist.py'), '--out', str(out),
                    '--num_train', '4', '--num_val', '0', '--seed', '3', '--frames', '32'],
                   check=True, capture_output=True)
    assert len((out / 'train_videofolder.txt').read_text().splitlines()) == 4


def test_sample_layout_runs_and_share():
    for seed in range(200):
        layout = sample_layout(np.random.default_rng(seed))
        assert len(layout) == 32 and 12 <= 32 - layout.count(TARGET) <= 18
        assert set(layout) == {TARGET, *KIND_CODES.values()}  # every kind of distractor appears
        runs = _kind_runs(layout)
        assert max(runs) <= 6 and len(runs) >= 3
    chunk = sample_layout(np.random.default_rng(0), runs=(3, 3), run_length=(3, 6), single_chunk=True)
    distractors = [i for i, k in enumerate(chunk) if k != TARGET]
    assert distractors == list(range(distractors[0], distractors[-1] + 1))  # one consecutive chunk


def _kind_runs(layout: str) -> list[int]:
    runs, start = [], 0
    for i in range(1, len(layout) + 1):
        if i == len(layout) or layout[i] != layout[start]:
            if layout[start] != TARGET:
                runs.append(i - start)
            start = i
    return runs


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, '>u4').tobytes()
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == '.gz' else data)


def test_read_idx_and_mnist_folder(tmp_path):
    images = np.zeros((10, 28, 28), np.uint8)
    images[:, 8:20, 8:20] = 255  # a 12x12 white square stands for every digit
    raw = tmp_path / 'MNIST' / 'raw'  # torchvision's layout
    raw.mkdir(parents=True)
    _write_idx(raw / 'train-images-idx3-ubyte.gz', images)
    _write_idx(raw / 'train-labels-idx1-ubyte', np.arange(10))
    assert np.array_equal(read_idx(raw / 'train-images-idx3-ubyte.gz'), images)
    assert read_idx(raw / 'train-labels-idx1-ubyte').tolist() == list(range(10))
    assert np.array_equal(MnistDigits(tmp_path).sample(np.random.default_rng(0), 7), images[7])

    bad = tmp_path / 'bad-idx'
    bad.write_bytes(bytes([0, 0, 0x08, 1]) + np.asarray([5], '>u4').tobytes() + b'abc')
    with pytest.raises(ValueError, match='bad-idx'):
        read_idx(bad)

    data = _generate(tmp_path / 'with_mnist', '--mnist', str(tmp_path), train=4, val=0)
    video, bits = next(iter(read_relevance(data / 'train_relevance.txt').items()))
    frame = _frames(data, video)[bits.index(1)]
    assert abs(int((frame > DIGIT_LEVEL).sum()) - 144) <= 20  # the square, not a synthetic digit


def test_synthetic_digits_are_mnist_like():
    rng = np.random.default_rng(0)
    for digit in range(10):
        img = render_digit(digit, rng)
        assert img.shape == (28, 28) and img.dtype == np.uint8 and img.max() == 255
        ys, xs = np.nonzero(img > 0)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 <= 22  # MNIST's 20x20 ink box
        assert 30 <= (img > 128).sum() <= 250
    assert not np.array_equal(render_digit(3, np.random.default_rng(1)),
                              render_digit(3, np.random.default_rng(2)))


def test_background_video(tmp_path):
    av = pytest.importorskip('av')
    path = tmp_path / 'bg.mp4'
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('mpeg4', rate=25)
        stream.width, stream.height, stream.pix_fmt = 80, 60, 'yuv420p'
        for j in range(64):  # a flat picture brightening by 2 levels a frame
            rgb = np.full((60, 80, 3), 40 + 2 * j, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = _generate(tmp_path / 'with_video', '--background_video', str(path), train=4, val=0)
    for video, bits in read_relevance(data / 'train_relevance.txt').items():
        frames = _frames(data, video).astype(float)
        shown = [t for t in range(32) if frames[t].max() > 0]
        assert frames[shown][:, :8].max() <= 8  # letterbox bars stay black
        level = np.array([np.median(frames[t, 8:56]) for t in shown])
        assert level.max() <= BG_MAX and 30 < level.min()
        slope = np.polyfit(shown, level, 1)[0]
        assert abs(slope - 2 * BG_MAX / 255) < 0.4  # the video's frames, in order


def test_exact_distractor_fractions():
    """--share P P gives exactly P of the 32 frames as distractors (scripts/repro_distract_cpu.sh); 0 needs --runs 0 0."""
    for share, runs, count in ((0.0, (0, 0), 0), (0.25, (5, 8), 8), (0.5, (5, 8), 16), (0.75, (5, 8), 24)):
        for seed in range(50):
            layout = sample_layout(np.random.default_rng(seed), share=(share, share), runs=runs)
            assert len(layout) == 32 and 32 - layout.count(TARGET) == count
            assert max(_kind_runs(layout), default=0) <= 6
