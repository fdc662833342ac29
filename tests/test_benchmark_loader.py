"""tools/benchmark_loader.py runs end to end on tiny frames; load_image's reduced decoding keeps its bounds."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from ops.frames import load_image
from tools.benchmark_loader import frame_paths, list_frames_dir, main, make_frames, model_section

TINY = ['--size', '64x48', '--videos', '2', '--frames', '4', '--target', '16', '-j', '2', '--repeat', '1',
        '--clip_size', '64x48', '--clip_frames', '4', '--img_size', '32', '--skip_model', '--json']


def test_tiny_run_reports_every_section_and_both_decoders_agree(tmp_path, capsys):
    res = main(TINY + ['--cache', str(tmp_path)])
    assert capsys.readouterr().out.count('\n') == 1  # --json: one line
    dec = res['decode']
    assert dec['frames'] == 8 and dec['src'] == '64x48' and dec['decoded'] == '32x24'  # 48 >= 2*16: 1/2 scale
    assert dec['same_size'] and dec['plain_size'] == dec['ours_size'] == [21, 16]
    assert dec['plain_fps'] > 0 and dec['ours_fps'] > 0 and dec['speedup'] > 0 and dec['pillow_resize_fps'] > 0
    assert len(dec['speedups']) == dec['rounds'] and min(dec['speedups']) <= dec['speedup'] <= max(dec['speedups'])
    try:  # with simplejpeg installed, ours uses it, and Pillow's draft path is timed beside it
        import simplejpeg  # noqa: F401
        assert dec['decoder'] == 'simplejpeg' and dec['draft_fps'] > 0
    except ImportError:
        assert dec['decoder'] == 'Pillow draft' and dec['draft_fps'] is None
    assert dec['mean_abs_diff'] < 3  # of 255: the reduced decode looks like the full one
    rows = res['pipeline']['rows']
    assert {(r['decoder'], r['workers']) for r in rows} == {('plain', 1), ('ours', 1), ('plain', 2), ('ours', 2)}
    assert all(r['frames_per_s'] == pytest.approx(4 * r['clips_per_s']) for r in rows)
    assert res['pipeline']['scale_size'] == 16 * 256 // 224
    clip = res['clip']
    assert clip['shape'] == [3 * 4, 32, 32] and clip['load_ms'] > 0 and res['model'] == []


def test_synthetic_frames_are_written_once_and_listed(tmp_path):
    root, list_file = make_frames(str(tmp_path), (40, 30), 2, 3)
    first = os.path.join(root, 'vid_000', 'img_00001.jpg')
    stamp = os.stat(first).st_mtime_ns
    assert make_frames(str(tmp_path), (40, 30), 2, 3) == (root, list_file)
    assert os.stat(first).st_mtime_ns == stamp
    paths = frame_paths(root, list_file)
    assert len(paths) == 6 and Image.open(paths[-1]).size == (40, 30)
    _, own_list = list_frames_dir(root, videos=1, frames=2, out_dir=str(tmp_path))
    assert frame_paths(root, own_list) == paths[:2]


@pytest.fixture(scope='module')
def jpeg_640x480(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp('jpeg') / 'frame.jpg')
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 256, (480, 640, 3), dtype=np.uint8)).save(path, quality=90)
    return path


@pytest.mark.parametrize('decode_size', [31, 56, 60, 61, 100, 112, 119, 120, 121, 128, 160, 200, 239, 240])
def test_reduced_decode_keeps_short_side_between_size_and_twice(jpeg_640x480, decode_size):
    """Short side 480 >= 2 * decode_size: a 1/2, 1/4 or 1/8 decode with decode_size <= short < 2 * decode_size."""
    img = load_image(jpeg_640x480, 'RGB', decode_size=decode_size)
    assert decode_size <= min(img.size) < 2 * decode_size
    assert img.size[0] * 3 == img.size[1] * 4  # aspect kept: 640 and 480 divide by 8


@pytest.mark.parametrize('decode_size', [8, 20, 30])
def test_reduced_decode_stops_at_one_eighth(jpeg_640x480, decode_size):
    """JPEG scales go no lower than 1/8, so small targets get 80x60 (short side >= decode_size still holds)."""
    assert load_image(jpeg_640x480, 'RGB', decode_size=decode_size).size == (80, 60)


def test_model_section_times_a_training_step_of_each_model():
    rows = model_section(32, 8, torch.device('cpu'), steps=1)  # ResNet-50 at 32 px: seconds on the CPU
    assert [(r['name'], r['frames']) for r in rows] == [('tsm-8', 8), ('cumulative-8', 8)]
    assert all(r['step_ms'] > 0 for r in rows)


@pytest.mark.parametrize('decode_size', [None, 241, 300, 480, 1000])
def test_full_decode_when_no_halving_fits(jpeg_640x480, decode_size):
    """Short side < 2 * decode_size (or no decode_size): decoded at full size, never upsampled or cut."""
    assert load_image(jpeg_640x480, 'RGB', decode_size=decode_size).size == (640, 480)
