"""Tests of ops/frames.py: frame files and video files -> PIL images, bad frames named, reduced decoding."""
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ops.frames import load_image
from ops.video_list import BadVideoError
from test_dataset import H, W, dataset, frame_ids, level, make_video


def test_jpeg_draft_decodes_reduced_but_correct(tmp_path):
    rng = np.random.RandomState(0)
    big = Image.fromarray(rng.randint(0, 255, (30, 40, 3), dtype=np.uint8)).resize((640, 480), Image.BILINEAR)
    path = str(tmp_path / 'big.jpg')
    big.save(path, quality=95)
    small = load_image(path, 'RGB', decode_size=100)
    assert min(small.size) >= 100 and small.size == (160, 120)
    full = load_image(path, 'RGB').resize(small.size, Image.BILINEAR)
    assert np.abs(np.asarray(small, float) - np.asarray(full, float)).mean() < 6
    assert load_image(path, 'RGB', decode_size=300).size == (640, 480)  # not "much smaller": full size
    big.save(str(tmp_path / 'big.png'))
    assert load_image(str(tmp_path / 'big.png'), 'RGB', decode_size=100).size == (640, 480)


@pytest.mark.parametrize('size', [(320, 240), (251, 333), (200, 112)])
def test_resize_at_load_is_groupscale(tmp_path, size):
    """load_image(resize_short=S) gives GroupScale(S)'s size and, within one grey level, its pixels (Pillow's
    bilinear resize), for RGB and L, with and without reduced decoding; then GroupScale has nothing to do."""
    from ops.transforms import GroupScale
    rng = np.random.RandomState(2)
    img = Image.fromarray(rng.randint(0, 255, (24, 32, 3), dtype=np.uint8)).resize(size, Image.BILINEAR)
    path = str(tmp_path / 'f.jpg')
    img.save(path, quality=90)
    for mode in ('RGB', 'L'):
        for short in (112, 64, 128):
            decoded = load_image(path, mode, decode_size=short)
            expected = GroupScale(short)([decoded])[0]
            got = load_image(path, mode, resize_short=short)
            assert got.mode == mode and got.size == expected.size, (mode, short)
            diff = np.abs(np.asarray(got, int) - np.asarray(expected, int))
            assert diff.max() <= 1 and diff.mean() < 0.1, (mode, short, diff.max(), diff.mean())
            assert GroupScale(short)([got])[0].size == got.size
    png = str(tmp_path / 'f.png')
    img.save(png)
    assert load_image(png, 'RGB', resize_short=100).size == GroupScale(100)([img])[0].size


@pytest.mark.parametrize('size', [(640, 480), (333, 251)])
def test_simplejpeg_path_gives_pillows_pixels(tmp_path, monkeypatch, size):
    """With simplejpeg installed, frames decode faster but to the very pixels of Pillow's path."""
    pytest.importorskip('simplejpeg')
    import ops.frames as D
    rng = np.random.RandomState(1)
    colour = Image.fromarray(rng.randint(0, 255, (30, 40, 3), dtype=np.uint8)).resize(size, Image.BILINEAR)
    files = {'colour.jpg': colour, 'gray.jpg': colour.convert('L'), 'cmyk.jpg': colour.convert('CMYK')}
    for name, img in files.items():
        img.save(str(tmp_path / name), quality=90)
    calls = []
    fast = D._decode_jpeg
    monkeypatch.setattr(D, '_decode_jpeg', lambda *a: calls.append(a[0]) or fast(*a))
    for name in files:
        for mode in ('RGB', 'L'):
            for decode_size, resize in ((None, None), (40, None), (100, None), (200, None), (400, None),
                                        (None, 112), (None, 300), (40, 90)):
                path = str(tmp_path / name)
                ours = np.asarray(load_image(path, mode, decode_size, resize))
                with monkeypatch.context() as m:
                    m.setattr(D, 'simplejpeg', None)
                    pillow = np.asarray(load_image(path, mode, decode_size, resize))
                assert ours.shape == pillow.shape and (ours == pillow).all(), (name, mode, decode_size, resize)
    assert calls and all(c.endswith('.jpg') for c in calls)
    for name, mode in (('colour.jpg', 'RGB'), ('gray.jpg', 'L'), ('gray.jpg', 'RGB')):  # the fast path decodes these
        assert fast(str(tmp_path / name), mode, 100) is not None
    assert fast(str(tmp_path / 'cmyk.jpg'), 'RGB', 100) is None  # what simplejpeg cannot do, Pillow does
    assert fast(str(tmp_path / 'colour.jpg'), 'L', 100) is None  # Pillow's luma of RGB, not the JPEG's Y


def test_missing_frame_names_frame_and_video(tmp_path):
    folder = make_video(tmp_path, 'v', 8)
    os.remove(os.path.join(folder, 'img_00004.jpg'))
    ds = dataset(tmp_path, ['v 8 0'], frames=8)
    with pytest.raises(BadVideoError) as err:
        ds[0]
    msg = str(err.value)
    assert os.path.join(folder, 'img_00004.jpg') in msg and 'list.txt:1' in msg


def test_list_longer_than_folder_names_missing_frame(tmp_path):
    make_video(tmp_path, 'v', 4)
    with pytest.raises(BadVideoError, match='img_00005.jpg.*says 6 frames'):
        dataset(tmp_path, ['v 6 0'], frames='all')[0]


def test_corrupt_jpeg_names_frame(tmp_path):
    folder = make_video(tmp_path, 'v', 4, size=(64, 48))
    bad = os.path.join(folder, 'img_00002.jpg')
    with open(bad, 'rb') as f:
        data = f.read()
    with open(bad, 'wb') as f:
        f.write(data[:len(data) // 2])  # truncated: header fine, decode fails
    garbage = os.path.join(folder, 'img_00003.jpg')
    with open(garbage, 'wb') as f:
        f.write(b'not a jpeg at all')
    ds = dataset(tmp_path, ['v 4 0'], frames='all')
    with pytest.raises(BadVideoError, match='img_00002.jpg'):
        ds[0]
    os.remove(bad)
    Image.new('RGB', (64, 48)).save(bad)
    with pytest.raises(BadVideoError, match='img_00003.jpg'):
        ds[0]


def test_missing_and_empty_folder_name_video_and_line(tmp_path):
    make_video(tmp_path, 'ok', 3)
    os.makedirs(tmp_path / 'empty')
    (tmp_path / 'clip.mp4').write_bytes(b'')
    ds = dataset(tmp_path, ['ok 3 0', 'gone 3 0', 'empty 3 0', 'clip.mp4 3 0'])
    with pytest.raises(BadVideoError, match=r"video folder not found: .*gone \(listed at .*list.txt:2\)"):
        ds[1]
    with pytest.raises(BadVideoError, match=r'empty video.*list.txt:3'):
        ds[2]
    with pytest.raises(BadVideoError, match=r"clip.mp4 .*list.txt:4.*video_source='video'"):
        ds[3]


def test_grayscale_frames_become_rgb(tmp_path):
    make_video(tmp_path, 'g', 4, tmpl='{}.jpg', start=0, mode='L')
    frames, _, _ = dataset(tmp_path, ['g 4 2'], image_tmpl='{}.jpg', start_index=0, frames=4)[0]
    assert frames.shape == (12, H, W) and frame_ids(frames) == [0, 1, 2, 3]
    assert torch.allclose(frames[0], frames[1]) and torch.allclose(frames[0], frames[2])


def test_frames_of_different_sizes_name_the_video_and_can_be_skipped(tmp_path):
    make_video(tmp_path, 'ok', 4)
    folder = make_video(tmp_path, 'mixed', 4)
    Image.new('RGB', (W * 2, H), (level(2),) * 3).save(os.path.join(folder, 'img_00003.jpg'))
    lines = ['ok 4 0', 'mixed 4 1']
    with pytest.raises(BadVideoError) as err:
        dataset(tmp_path, lines, frames=4)[1]
    text = str(err.value)
    assert folder in text and 'list.txt:2' in text and 'img_00003.jpg' in text and f'{2 * W}x{H}' in text, text
    ds = dataset(tmp_path, lines, frames=4, on_bad_video='skip')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert ds[1] is None and ds[0] is not None and ds.num_skipped == 1


def write_video(path: str, n: int) -> None:
    av = pytest.importorskip('av')
    with av.open(path, 'w') as out:
        stream = out.add_stream('ffv1', rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, 'yuv444p'
        for i in range(n):
            img = Image.new('RGB', (32, 32), (level(i),) * 3)
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_video_files_counted_lazily_and_sampled(tmp_path):
    pytest.importorskip('ops.video_io')
    write_video(str(tmp_path / 'a.mkv'), 12)
    ds = dataset(tmp_path, ['a.mkv 1', 'a.mkv 12 0', 'missing.mkv 0'], num_segments=3, random_shift=False,
                 video_source='video', num_class=2)
    for i, label in ((0, 1), (1, 0)):
        frames, lab, length = ds[i]
        assert frames.shape == (9, 32, 32) and (lab, length) == (label, 3)
        assert frame_ids(frames) == [2, 6, 10]
    with pytest.raises(BadVideoError, match=r'missing.mkv.*list.txt:3'):
        ds[2]
    with open(tmp_path / 'broken.mkv', 'wb') as f:
        f.write(b'\x00' * 100)
    ds = dataset(tmp_path, ['broken.mkv 0'], video_source='video')
    with pytest.raises(BadVideoError, match='broken.mkv'):
        ds[0]
