"""tools/extract_flow.py: TSN's x/y flow JPEGs (sign and scale), N frames -> N-1 pairs, resumable, corrupt
input reported; and the Flow stream trained on generated Move4MNIST from them with no further step."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ops import video_io
from test_video_io import decode_with_av, make_video
from tools import extract_flow
from tools.extract_flow import compute_flow, decode_flow, encode_flow, flow_algorithm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip('cv2', reason='tools/extract_flow.py needs opencv-contrib-python-headless')


def texture(size: int = 112, seed: int = 0) -> np.ndarray:
    """A smooth random grey texture, (size, size) uint8, with detail at every place (for flow)."""
    noise = np.random.default_rng(seed).integers(0, 256, (size, size), np.uint8)
    blurred = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(2)), np.float32)
    return np.clip((blurred - blurred.mean()) * 4 + 128, 0, 255).astype(np.uint8)


def moved(tex: np.ndarray, dx: int, dy: int, size: int = 64) -> np.ndarray:
    """The central ``size`` window of ``tex`` with its content moved ``dx`` px right and ``dy`` px down."""
    o = (tex.shape[0] - size) // 2
    return tex[o - dy:o - dy + size, o - dx:o - dx + size]


# ---------------------------------------------------------------- the encoding

def test_encoding_maps_bound_linearly_with_128_as_rest():
    flow = np.array([[[0, 0], [20, -20], [40, -40], [10, -10], [-0.1, 0.1]]], np.float32)  # (1, 5, 2)
    x, y = encode_flow(flow, bound=20)
    # (v + 20) * 255 / 40, rounded half up: 0 -> 127.5 -> 128; 10 -> 191.25 -> 191; -10 -> 63.75 -> 64
    assert x.tolist() == [[128, 255, 255, 191, 127]] and y.tolist() == [[128, 0, 0, 64, 128]]
    assert x.dtype == np.uint8
    assert encode_flow(np.full((1, 1, 2), 5.0), bound=5)[0].item() == 255  # the bound is an argument
    back = decode_flow(x, y, bound=20)
    assert back[0, 0].tolist() == [0, 0]
    assert np.abs(back[0, 1:4] - [[20, -20], [20, -20], [10, -10]]).max() <= 40 / 255  # one grey level
    with pytest.raises(ValueError, match='H, W, 2'):
        encode_flow(np.zeros((4, 4)))


@pytest.mark.parametrize('algo', ['tvl1', 'dis'])
@pytest.mark.parametrize('dx,dy', [(2, 0), (0, 3), (-3, 0), (0, -2), (2, 1)])
def test_known_shift_gives_its_displacement_and_sign(algo, dx, dy):
    """Content moved right/down gives positive x/y: the median flow of the inner area is the shift."""
    tex = texture()
    flow = compute_flow(flow_algorithm(algo), moved(tex, 0, 0), moved(tex, dx, dy))
    inner = flow[12:-12, 12:-12].reshape(-1, 2)
    assert np.abs(np.median(inner, axis=0) - [dx, dy]).max() < 0.3, np.median(inner, axis=0)
    x, y = encode_flow(flow)
    expect = np.floor((np.array([dx, dy]) + 20) * 255 / 40 + 0.5)  # the JPEG-free grey level of the shift
    levels = [np.median(x[12:-12, 12:-12]), np.median(y[12:-12, 12:-12])]
    assert np.abs(np.array(levels) - expect).max() <= 2


def test_frame_folder_round_trip_through_jpeg(tmp_path):
    """Frames 0..3 moving 2 px right and 1 px down per frame -> 3 pairs whose JPEGs decode to (2, 1)."""
    tex = texture(seed=3)
    folder = tmp_path / 'frames' / 'v'
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(moved(tex, 2 * i, i)).convert('RGB').save(folder / f'img_{i + 1:05d}.jpg', quality=95)
    dst = tmp_path / 'flow'
    assert extract_flow.main([str(tmp_path / 'frames'), str(dst), '--from', 'frames', '--algo', 'tvl1']) == 0
    names = sorted(os.listdir(dst / 'v'))
    assert names == [f'flow_{c}_{k:05d}.jpg' for c in 'xy' for k in (1, 2, 3)]  # numbered as the frames: from 1
    for k in (1, 2, 3):
        x = np.asarray(Image.open(dst / 'v' / f'flow_x_{k:05d}.jpg'))
        y = np.asarray(Image.open(dst / 'v' / f'flow_y_{k:05d}.jpg'))
        med = np.median(decode_flow(x, y)[12:-12, 12:-12].reshape(-1, 2), axis=0)
        assert np.abs(med - [2, 1]).max() < 0.4, (k, med)


# ---------------------------------------------------------------- video files: counts, resuming, failures

@pytest.fixture
def src(tmp_path):
    d = tmp_path / 'src'
    make_video(d / 'ClassA' / 'v_a.mp4', n=7)
    make_video(d / 'ClassB' / 'v_b.mkv', n=5, width=48, height=64, codec='libx264')
    (d / 'ClassB' / 'notes.txt').write_text('not a video')
    return d


def names(folder, c):
    return sorted(n for n in os.listdir(folder) if n.startswith(f'flow_{c}_'))


def test_n_frames_give_n_minus_1_pairs_numbered_from_1(src, tmp_path):
    dst = tmp_path / 'dst'
    assert extract_flow.main([str(src), str(dst), '--algo', 'dis']) == 0
    for video, rel in (('ClassA/v_a.mp4', 'ClassA/v_a'), ('ClassB/v_b.mkv', 'ClassB/v_b')):
        n = len(decode_with_av(src / video))  # independent frame count
        for c in 'xy':
            assert names(dst / rel, c) == [f'flow_{c}_{k:05d}.jpg' for k in range(1, n)]
    assert Image.open(dst / 'ClassB/v_b/flow_x_00001.jpg').size == (48, 64)
    assert [p for p in dst.rglob('*') if '.tmp-' in p.name] == [] and not (dst / 'ClassB/notes').exists()


def test_short_side_and_template(src, tmp_path):
    dst = tmp_path / 'dst'
    argv = [str(src / 'ClassB'), str(dst), '--algo', 'dis', '--short_side', '24', '--template', 'flow_{}_{:06d}.jpg',
            '--start_index', '0']
    assert extract_flow.main(argv) == 0
    assert names(dst / 'v_b', 'y') == [f'flow_y_{k:06d}.jpg' for k in range(4)]
    assert Image.open(dst / 'v_b/flow_y_000000.jpg').size == (24, 32)


def test_rerun_skips_finished_and_redoes_interrupted(src, tmp_path, monkeypatch, capsys):
    dst = tmp_path / 'dst'
    assert extract_flow.main([str(src), str(dst), '--algo', 'dis']) == 0
    done = dst / 'ClassA/v_a/flow_x_00001.jpg'
    os.utime(done, (1, 1))
    # An interrupted merge: some pairs moved in, the first y image (the completion mark) not yet,
    # and a dead worker's .tmp folder left beside it.
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    os.remove(dst / 'ClassB/v_b/flow_y_00001.jpg')
    (dst / f'ClassB/v_b.tmp-{dead.pid}').mkdir()
    decoded = []
    real = video_io.iter_frames
    monkeypatch.setattr(video_io, 'iter_frames', lambda path, fps=None: decoded.append(path) or real(path, fps))
    capsys.readouterr()
    assert extract_flow.main([str(src), str(dst), '--algo', 'dis']) == 0
    assert [os.path.basename(p) for p in decoded] == ['v_b.mkv']
    assert '1 videos done, 1 already done' in capsys.readouterr().out
    assert os.stat(done).st_mtime == 1
    assert names(dst / 'ClassB/v_b', 'y') == [f'flow_y_{k:05d}.jpg' for k in range(1, 5)]
    assert not (dst / f'ClassB/v_b.tmp-{dead.pid}').exists()
    decoded.clear()
    assert extract_flow.main([str(src), str(dst), '--algo', 'dis']) == 0 and decoded == []


def test_corrupt_input_reported_at_end_others_done(src, tmp_path, capsys):
    noise = np.random.default_rng(1).integers(0, 256, 5000, np.uint8)
    (src / 'ClassA' / 'random.mp4').write_bytes(noise.tobytes())
    make_video(src / 'ClassA' / 'single.avi', n=1)
    dst = tmp_path / 'dst'
    assert extract_flow.main([str(src), str(dst), '--algo', 'dis']) == 1
    err = capsys.readouterr().err
    summary = err[err.index('2 videos failed'):]
    assert 'random.mp4' in summary and 'Invalid data' in summary
    assert 'single.avi: one frame: no pair of frames' in summary
    assert len(names(dst / 'ClassA/v_a', 'x')) == 6 and len(names(dst / 'ClassB/v_b', 'x')) == 4
    assert not (dst / 'ClassA/random').exists() and not (dst / 'ClassA/single').exists()
    assert [p for p in dst.rglob('*') if '.tmp-' in p.name] == []


def test_corrupt_frame_and_gap_in_frame_folders(tmp_path, capsys):
    tex = texture()
    for name, numbers in (('good', (0, 1, 2)), ('gap', (0, 2)), ('bad', (0, 1))):
        (tmp_path / name).mkdir()
        for i in numbers:
            Image.fromarray(moved(tex, i, 0)).save(tmp_path / name / f'{i}.jpg')
    (tmp_path / 'bad' / '1.jpg').write_bytes((tmp_path / 'bad' / '1.jpg').read_bytes()[:200])
    assert extract_flow.main([str(tmp_path), str(tmp_path), '--from', 'frames', '--algo', 'dis']) == 1
    summary = capsys.readouterr().err
    assert 'gap: no frame 1.jpg (gap)' in summary and os.path.join('bad', '1.jpg') in summary
    assert names(tmp_path / 'good', 'x') == ['flow_x_00000.jpg', 'flow_x_00001.jpg']  # from frame 0, as the frames
    assert names(tmp_path / 'bad', 'x') == [] and names(tmp_path / 'gap', 'x') == []


def test_two_frame_templates_need_frame_template(tmp_path, capsys):
    tex = texture()
    (tmp_path / 'v').mkdir()
    for i in (1, 2, 3):
        Image.fromarray(moved(tex, i, 0)).save(tmp_path / 'v' / f'img_{i:05d}.jpg')
        Image.fromarray(moved(tex, 0, i)).save(tmp_path / 'v' / f'{i:05d}.jpg')
    assert extract_flow.main([str(tmp_path), str(tmp_path), '--from', 'frames', '--algo', 'dis']) == 1
    assert 'give --frame_template' in capsys.readouterr().err and names(tmp_path / 'v', 'x') == []
    argv = [str(tmp_path), str(tmp_path), '--from', 'frames', '--algo', 'dis', '--frame_template', '{:05d}.jpg']
    assert extract_flow.main(argv) == 0
    flow = decode_flow(*(np.asarray(Image.open(tmp_path / 'v' / f'flow_{c}_00001.jpg')) for c in 'xy'))
    assert np.abs(np.median(flow[12:-12, 12:-12].reshape(-1, 2), axis=0) - [0, 1]).max() < 0.4  # the down-moving set


def test_command_line_parallel(src, tmp_path):
    dst = tmp_path / 'dst'
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'extract_flow.py'), str(src), str(dst),
                           '-j', '2', '--algo', 'dis'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert '2 videos done' in proc.stdout and len(names(dst / 'ClassA/v_a', 'y')) == 6


# ---------------------------------------------------------------- Move4MNIST: the Flow stream with no further step

@pytest.fixture(scope='module')
def move4mnist(tmp_path_factory):
    """`make_move4mnist.py --out D`, then `extract_flow.py D D --from frames -j 2` (DIS: the test's speed)."""
    from tools.make_move4mnist import main as make_move4mnist
    out = tmp_path_factory.mktemp('move4mnist')
    make_move4mnist(['--out', str(out), '--num_train', '8', '--num_val', '4', '--seed', '0'])
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'extract_flow.py'), str(out), str(out),
                           '--from', 'frames', '-j', '2', '--algo', 'dis'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert '12 videos done' in proc.stdout
    return out


def list_lines(root, split):
    with open(os.path.join(root, f'{split}_videofolder.txt')) as f:
        return [(path, int(n), int(label)) for path, n, label in (line.split() for line in f)]


def test_move4mnist_flow_beside_the_frames(move4mnist):
    for split in ('train', 'val'):
        for path, n, _ in list_lines(move4mnist, split):
            folder = move4mnist / path
            assert len([f for f in os.listdir(folder) if f[0].isdigit()]) == n  # the RGB frames are untouched
            for c in 'xy':  # numbered from 0, as the frames: one start_index for RGB and Flow
                assert names(folder, c) == [f'flow_{c}_{k:05d}.jpg' for k in range(n - 1)]


def test_move4mnist_digit_flow_points_the_labelled_way(move4mnist):
    """On the pairs of target frames, the flow under the digit (the brightest pixels) points the label's way.

    The whole frame's mean does not: the background pans (0.1-0.5 px a frame, any direction) and an
    object crosses it, while the digit covers a few percent of the frame.
    """
    from tools.make_move4mnist import CLASSES, DIRECTIONS, read_relevance
    for split in ('train', 'val'):
        relevance = read_relevance(move4mnist / f'{split}_relevance.txt')
        for path, n, label in list_lines(move4mnist, split):
            folder, rel = move4mnist / path, relevance[path]
            under_digit = []
            for k in range(n - 1):
                if rel[k] and rel[k + 1]:  # the digit moves only between two target frames
                    flow = decode_flow(np.asarray(Image.open(folder / f'flow_x_{k:05d}.jpg')),
                                       np.asarray(Image.open(folder / f'flow_y_{k:05d}.jpg')))
                    digit = np.asarray(Image.open(folder / f'{k}.jpg').convert('L')) > 235
                    under_digit.append(flow[digit].mean(axis=0))
            mean_x, mean_y = np.mean(under_digit, axis=0)
            dy, dx = DIRECTIONS[label]
            along, across = mean_x * dx + mean_y * dy, abs(mean_x * dy) + abs(mean_y * dx)
            assert along > 0.1 and along > across, (path, CLASSES[label], mean_x, mean_y)


def flow_args(data, out, *extra):
    return ['move4mnist', 'Flow', '--root_path', str(data), '--arch', 'resnet18', '--num_segments', '4', '-b', '4',
            '-j', '0', '--img_size', '32', '--scale_size', '36', '--pretrain', 'scratch', '--npb', '--device', 'cpu',
            '--lr', '0.01', '--epochs', '1', '--eval-freq', '1', '--root_log', str(out / 'log'),
            '--root_model', str(out / 'ckpt'), '--seed', '1', *extra]


def test_move4mnist_flow_trains_and_fuses_with_rgb(move4mnist, tmp_path):
    """main.py move4mnist Flow trains on the flow as written; test_models scores of RGB and Flow fuse (1 : 1.5)."""
    import main as train_main
    from tools import ensemble, test_models
    flow = train_main.main(flow_args(move4mnist, tmp_path, '--store_name', 'flow'))
    assert flow['count'] == 4 and np.isfinite(flow['loss'])
    rgb_argv = [a if a != 'Flow' else 'RGB' for a in flow_args(move4mnist, tmp_path, '--store_name', 'rgb')]
    train_main.main(rgb_argv)
    scores = {}
    for name in ('rgb', 'flow'):
        scores[name] = tmp_path / f'{name}.npz'
        test_models.main(['--weights', str(tmp_path / 'ckpt' / name / 'ckpt.pth.tar'), '--root_path', str(move4mnist),
                          '-j', '0', '--device', 'cpu', '--out_dir', str(tmp_path), '--tag', name,
                          '--save_scores', str(scores[name])])
    fused = ensemble.main([str(scores['rgb']), str(scores['flow']), '--coeff', '1', '1.5'])
    rgb, flw = (np.load(scores[n])['scores'] for n in ('rgb', 'flow'))
    assert fused['count'] == 4 and np.allclose(fused['scores'], rgb + 1.5 * flw, atol=1e-5)


def test_move4mnist_flow_with_clustering(move4mnist, tmp_path):
    """The Hamming clustering on the first stage's activations of the 5-pair flow stacks trains and evaluates."""
    import main as train_main
    argv = flow_args(move4mnist, tmp_path, '--store_name', 'cl', '--cluster', 'cumulative', '--frames', '8')
    result = train_main.main(argv)
    assert result['count'] == 4 and np.isfinite(result['loss'])
    again = train_main.main(argv + ['--evaluate', '--resume', str(tmp_path / 'ckpt' / 'cl' / 'ckpt.best.pth.tar')])
    assert again['top1'] == result['top1'] and abs(again['loss'] - result['loss']) < 1e-4
