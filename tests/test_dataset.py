"""Tests of ops/dataset.py: list parsing, frame indices, loading, bad input, collate."""
import os
import traceback
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ops.dataset import (BadVideoError, VideoDataset, cluster_indices, collate_videos, dense_indices, load_image,
                         parse_list, train_indices, val_indices)

H, W = 12, 16


def level(i: int) -> int:
    """Gray level that identifies frame i (robust to JPEG rounding)."""
    return 10 + 7 * i


def frame_ids(tensor: torch.Tensor, channels: int = 3) -> list[int]:
    """Recover the frame numbers of a (T*C, H, W) tensor in [0, 1] built from `level` frames."""
    means = tensor.view(-1, channels, tensor.size(-2), tensor.size(-1)).mean(dim=(1, 2, 3)) * 255
    return [int(round((m - 10) / 7)) for m in means.tolist()]


def make_video(root, name: str, n: int, tmpl: str = 'img_{:05d}.jpg', start: int = 1, mode: str = 'RGB',
               size=(W, H)) -> str:
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        Image.new(mode, size, level(i) if mode == 'L' else (level(i),) * 3).save(
            os.path.join(folder, tmpl.format(i + start)))
    return folder


def write_list(path, lines) -> str:
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return str(path)


def dataset(tmp_path, lines, **kwargs) -> VideoDataset:
    return VideoDataset(str(tmp_path), write_list(tmp_path / 'list.txt', lines), **kwargs)


# ----------------------------------------------------------------------------- list parsing

def test_parse_list_reads_paths_counts_labels_and_skips_comments(tmp_path):
    lst = write_list(tmp_path / 'l.txt', ['# header', '', 'a 10 2', 'sub/b  7 1 3', '/abs/c 5 0'])
    recs = parse_list(lst, 'root', num_class=4)
    assert [r.path for r in recs] == [os.path.join('root', 'a'), os.path.join('root', 'sub/b'), '/abs/c']
    assert [r.num_frames for r in recs] == [10, 7, 5]
    assert [r.labels for r in recs] == [[2], [1, 3], [0]] and recs[1].label == 1
    assert [r.line for r in recs] == [3, 4, 5] and recs[0].where == f'{lst}:3'


@pytest.mark.parametrize('line, words', [
    ('a 10', 'expected'), ('a', 'expected'),
    ('a abc 1', 'num_frames'), ('a 0 1', 'num_frames'), ('a -3 1', 'num_frames'), ('a 2.5 1', 'num_frames'),
    ('a 10 x', 'label'), ('a 10 4', 'outside [0, 4)'), ('a 10 -1', 'outside'), ('a 10 1 9', 'outside'),
])
def test_parse_list_errors_name_file_line_and_expectation(tmp_path, line, words):
    lst = write_list(tmp_path / 'l.txt', ['ok 3 0', line])
    with pytest.raises(ValueError) as err:
        parse_list(lst, str(tmp_path), num_class=4)
    assert f'{lst}:2' in str(err.value) and words in str(err.value)


def test_parse_list_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        parse_list(str(tmp_path / 'nope.txt'), str(tmp_path), None)
    lst = write_list(tmp_path / 'empty.txt', ['# only a comment', ''])
    with pytest.raises(ValueError, match='no videos'):
        parse_list(lst, str(tmp_path), None)


def test_parse_list_video_files_may_omit_num_frames(tmp_path):
    lst = write_list(tmp_path / 'l.txt', ['v.mp4 2', 'w.mp4 30 1'])
    recs = parse_list(lst, 'r', 3, video_source='video')
    assert (recs[0].num_frames, recs[0].label, recs[1].num_frames) == (None, 2, 30)
    with pytest.raises(ValueError, match='l.txt:1'):
        parse_list(lst, 'r', 3)  # frame folders need the count


# ----------------------------------------------------------------------------- frame indices

@pytest.mark.parametrize('n, s', [(40, 8), (8, 8), (9, 4), (100, 3)])
def test_train_indices_one_random_frame_per_segment(n, s):
    rng = np.random.RandomState(0)
    avg = n // s
    draws = [train_indices(n, s, rng=rng) for _ in range(50)]
    for idx in draws:
        assert len(idx) == s and (np.diff(idx) > 0).all() and idx.min() >= 0 and idx.max() < n
        assert all(k * avg <= i < (k + 1) * avg for k, i in enumerate(idx))
    if avg > 1:
        assert len({tuple(d) for d in draws}) > 1  # really random


def test_val_indices_are_segment_centres():
    assert val_indices(16, 4).tolist() == [2, 6, 10, 14]
    assert val_indices(10, 3).tolist() == [1, 5, 8]  # int(10/3 * (k + .5))
    assert val_indices(16, 4).tolist() == [2, 6, 10, 14]


@pytest.mark.parametrize('fn', [lambda n, s: train_indices(n, s, rng=np.random.RandomState(1)), val_indices])
def test_short_video_repeats_frames_evenly(fn):
    idx = fn(3, 8).tolist()
    assert idx == sorted(idx) and set(idx) == {0, 1, 2} and len(idx) == 8


def test_new_length_keeps_snippets_inside_the_video():
    for seed in range(20):
        assert train_indices(20, 4, new_length=5, rng=np.random.RandomState(seed)).max() <= 15
    assert val_indices(20, 4, new_length=5).max() <= 15


def test_twice_sample_and_clips():
    assert val_indices(16, 4, twice_sample=True).tolist() == [2, 6, 10, 14, 0, 4, 8, 12]
    clips = val_indices(30, 3, num_clips=3).reshape(3, 3)
    assert (np.diff(clips, axis=0) > 0).all()  # clips differ, each stays in its segment
    assert ((clips // 10) == np.arange(3)).all()


def test_dense_sampling_window():
    rng = np.random.RandomState(0)
    for _ in range(20):
        idx = dense_indices(100, 8, 'train', rng=rng)
        assert (np.diff(idx) == 8).all() and 0 <= idx[0] < 36
    assert dense_indices(100, 8, 'val')[0] == 18
    test = dense_indices(100, 8, 'test', num_clips=10).reshape(10, 8)
    assert test[:, 0].tolist() == np.linspace(0, 36, 10, dtype=int).tolist() and (np.diff(test, axis=1) == 8).all()
    assert dense_indices(20, 8, 'train').max() < 20  # wraps in short videos, as TSM


def test_cluster_indices_all_pad_and_even_sampling():
    assert cluster_indices(16, 16, True)[0].tolist() == list(range(16))
    idx, length = cluster_indices(5, 8, True)
    assert idx.tolist() == [0, 1, 2, 3, 4, 4, 4, 4] and length == 5
    idx, length = cluster_indices(7, 'all', False)
    assert idx.tolist() == list(range(7)) and length == 7
    idx, length = cluster_indices(64, 16, False)
    assert length == 16 and idx.tolist() == list(range(2, 64, 4))
    rng = np.random.RandomState(0)
    for n in (17, 33, 100):
        draws = [cluster_indices(n, 16, True, rng=rng)[0] for _ in range(5)]
        edges = np.arange(17) * n // 16
        assert all(len(idx) == 16 and ((edges[:-1] <= idx) & (idx < edges[1:])).all() for idx in draws)
        assert len({tuple(idx) for idx in draws}) > 1  # a random frame per segment, not a fixed one


# ----------------------------------------------------------------------------- loading

def test_sampling_mode_loads_segment_centres(tmp_path):
    make_video(tmp_path, 'v', 16)
    ds = dataset(tmp_path, ['v 16 1'], num_segments=4, random_shift=False)
    frames, label, length = ds[0]
    assert frames.shape == (12, H, W) and frames.dtype == torch.float32
    assert (label, length) == (1, 4) and frame_ids(frames) == [2, 6, 10, 14]


def test_frames_mode_exact_all_frames_when_length_equals_f(tmp_path):
    make_video(tmp_path, 'v', 8)
    frames, _, length = dataset(tmp_path, ['v 8 0'], frames=8)[0]
    assert frame_ids(frames) == list(range(8)) and length == 8


def test_frames_mode_pads_short_video_with_last_frame(tmp_path):
    make_video(tmp_path, 'v', 5)
    frames, _, length = dataset(tmp_path, ['v 5 0'], frames=8)[0]
    assert frame_ids(frames) == [0, 1, 2, 3, 4, 4, 4, 4] and length == 5


def test_frames_mode_samples_long_video_evenly(tmp_path):
    make_video(tmp_path, 'v', 24)
    frames, _, length = dataset(tmp_path, ['v 24 0'], frames=6, random_shift=False)[0]
    assert frame_ids(frames) == [2, 6, 10, 14, 18, 22] and length == 6
    frames, _, _ = dataset(tmp_path, ['v 24 0'], frames=6, random_shift=True)[0]
    ids = frame_ids(frames)
    assert all(4 * k <= i < 4 * k + 4 for k, i in enumerate(ids))


def test_frames_all_and_collate_pad_to_longest(tmp_path):
    make_video(tmp_path, 'a', 5)
    make_video(tmp_path, 'b', 8)
    ds = dataset(tmp_path, ['a 5 0', 'b 8 1'], frames='all')
    assert ds[0][0].shape == (15, H, W)
    x, labels, lengths = collate_videos([ds[0], ds[1]])
    assert x.shape == (2, 24, H, W) and labels.tolist() == [0, 1] and lengths.tolist() == [5, 8]
    assert frame_ids(x[0]) == [0, 1, 2, 3, 4, 4, 4, 4] and frame_ids(x[1]) == list(range(8))
    assert labels.dtype == lengths.dtype == torch.long


def test_collate_drops_none_and_reports_skips():
    item = (torch.zeros(6, 2, 2), 3, 2)
    x, labels, lengths, skipped = collate_videos([None, item, None], return_skipped=True)
    assert x.shape == (1, 6, 2, 2) and labels.tolist() == [3] and skipped == 2
    x, labels, lengths = collate_videos([None])
    assert x.shape[0] == 0 and labels.numel() == 0
    with pytest.raises(ValueError):
        collate_videos([(torch.zeros(5, 2, 2), 0, 1)], channels=3)


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


def test_dataloader_surfaces_the_culprit(tmp_path):
    make_video(tmp_path, 'ok', 3)
    ds = dataset(tmp_path, ['ok 3 0', 'gone 3 0'], num_segments=3)
    for workers in (0, 1):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=collate_videos)
        with pytest.raises(Exception) as err:
            next(iter(loader))
        last = traceback.format_exception(err.value)[-1].strip().splitlines()[-1]
        assert 'gone' in last and 'list.txt:2' in last, last


def test_skip_bad_video_warns_once_and_counts(tmp_path):
    make_video(tmp_path, 'ok', 3)
    ds = dataset(tmp_path, ['ok 3 0', 'gone 3 1'], num_segments=3, on_bad_video='skip')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert ds[1] is None and ds[1] is None
    assert len(caught) == 1 and 'gone' in str(caught[0].message) and ds.num_skipped == 2
    x, labels, lengths, skipped = collate_videos([ds[0], None], return_skipped=True)
    assert labels.tolist() == [0] and skipped == 1


def test_grayscale_frames_become_rgb(tmp_path):
    make_video(tmp_path, 'g', 4, tmpl='{}.jpg', start=0, mode='L')
    frames, _, _ = dataset(tmp_path, ['g 4 2'], image_tmpl='{}.jpg', start_index=0, frames=4)[0]
    assert frames.shape == (12, H, W) and frame_ids(frames) == [0, 1, 2, 3]
    assert torch.allclose(frames[0], frames[1]) and torch.allclose(frames[0], frames[2])


def test_flow_loads_x_y_pairs_with_new_length(tmp_path):
    folder = tmp_path / 'f'
    folder.mkdir()
    for i in range(10):
        for c, off in (('x', 0), ('y', 100)):
            Image.new('L', (W, H), level(i) + off).save(folder / f'flow_{c}_{i + 1:05d}.jpg')
    # the list counts the video's 11 frames, which give the 10 pairs
    ds = dataset(tmp_path, ['f 11 0'], num_segments=2, new_length=3, modality='Flow',
                 image_tmpl='flow_{}_{:05d}.jpg', random_shift=False)
    frames, _, length = ds[0]
    assert frames.shape == (2 * 3 * 2, H, W) and length == 2
    means = (frames.mean(dim=(1, 2)) * 255).round().tolist()
    expect = [level(i) + off for p in val_indices(10, 2, 3).tolist() for i in range(p, p + 3) for off in (0, 100)]
    assert np.allclose(means, expect, atol=2)
    with pytest.raises(ValueError, match='x'):
        dataset(tmp_path, ['f 11 0'], modality='Flow', image_tmpl='img_{:05d}.jpg')


def test_flow_of_n_frames_reads_n_minus_1_pairs(tmp_path):
    """A list line of N frames: Flow positions 0..N-2 (pair N-1 does not exist), at every sampling."""
    folder = tmp_path / 'f'
    folder.mkdir()
    for i in range(5):  # the pairs of 6 frames, numbered from 0 as Move4MNIST's frames
        for c in 'xy':
            Image.new('L', (W, H), level(i)).save(folder / f'flow_{c}_{i:05d}.jpg')
    common = dict(modality='Flow', image_tmpl='flow_{}_{:05d}.jpg', start_index=0)
    frames, _, length = dataset(tmp_path, ['f 6 0'], frames='all', **common)[0]
    assert length == 5 and frames.shape == (5 * 2, H, W)
    assert np.allclose((frames[::2].mean(dim=(1, 2)) * 255).round().tolist(), [level(i) for i in range(5)], atol=2)
    for shift in (True, False):  # 5-pair stacks and 8 segments never run past the last pair
        frames, _, _ = dataset(tmp_path, ['f 6 0'], num_segments=8, new_length=5, random_shift=shift, **common)[0]
        assert frames.shape == (8 * 5 * 2, H, W)
    with pytest.raises(BadVideoError, match='no flow pair'):
        dataset(tmp_path, ['f 1 0'], frames='all', **common)[0]


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


def test_dataset_resizes_at_load_for_a_groupscale_transform(tmp_path, monkeypatch):
    """VideoDataset(resize_short=S) with val_transform(S, crop): the same clip within one grey level, and
    GroupScale finds the frames already at their size (so it does no second resize)."""
    from ops.transforms import GroupScale, val_transform
    make_video(tmp_path, 'v', 6, size=(320, 240))
    seen = []
    scale = GroupScale.__call__
    plain = dataset(tmp_path, ['v 6 0'], num_segments=3, random_shift=False, transform=val_transform(128, 112))
    fused = dataset(tmp_path, ['v 6 0'], num_segments=3, random_shift=False, transform=val_transform(128, 112),
                    decode_size=128, resize_short=128)
    a, b = (np.stack([np.asarray(img, int) for img in d[0][0]]) for d in (plain, fused))
    monkeypatch.setattr(GroupScale, '__call__',
                        lambda self, group: seen.extend(i.size for i in group) or scale(self, group))
    fused[0]
    assert seen == [(170, 128)] * 3
    assert a.shape == b.shape == (3, 112, 112, 3) and np.abs(a - b).max() <= 1


@pytest.mark.parametrize('size', [(640, 480), (333, 251)])
def test_simplejpeg_path_gives_pillows_pixels(tmp_path, monkeypatch, size):
    """With simplejpeg installed, frames decode faster but to the very pixels of Pillow's path."""
    pytest.importorskip('simplejpeg')
    import ops.dataset as D
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


def test_option_conflicts_are_errors(tmp_path):
    make_video(tmp_path, 'v', 4)
    for kwargs in (dict(twice_sample=True), dict(num_clips=2), dict(frames=8, dense_sample=True),
                   dict(frames=0), dict(modality='Depth'), dict(on_bad_video='ignore')):
        with pytest.raises(ValueError):
            dataset(tmp_path, ['v 4 0'], **kwargs)
    ds = dataset(tmp_path, ['v 4 0'], num_segments=2, twice_sample=True, random_shift=False)
    assert ds[0][0].shape == (12, H, W) and ds[0][2] == 4


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


# ----------------------------------------------------------------------------- faults in lists and frames

def test_list_with_a_byte_order_mark_reads_its_first_path(tmp_path):
    lst = tmp_path / 'bom.txt'
    lst.write_bytes('\ufeffa 3 0\nb 3 1\n'.encode('utf-8'))
    assert [r.path for r in parse_list(str(lst), 'root', 2)] == [os.path.join('root', 'a'), os.path.join('root', 'b')]


@pytest.mark.parametrize('line', ['my video 32 0', 'my long video 32 0 1', 'my video 3'])
def test_a_path_with_spaces_is_named_as_such(tmp_path, line):
    lst = write_list(tmp_path / 'l.txt', ['ok 3 0', line])
    with pytest.raises(ValueError) as err:
        parse_list(lst, str(tmp_path), num_class=4)
    assert f'{lst}:2' in str(err.value) and 'paths cannot contain spaces' in str(err.value), err.value


def test_repeated_lines_warn_once_naming_the_first_and_the_count(tmp_path):
    lst = write_list(tmp_path / 'l.txt', ['a 3 0', 'b 3 1', 'a 3 0', 'c 3 0', 'b 3 1', 'a 3 0'])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert len(parse_list(lst, str(tmp_path), 2)) == 6  # kept, as listed
    assert len(caught) == 1, [str(c.message) for c in caught]
    text = str(caught[0].message)
    assert f'{lst}:3' in text and 'first at line 1' in text and '3 repeated' in text, text


def test_list_count_below_the_frames_on_disk_warns_once(tmp_path):
    for name in ('a', 'b', 'c'):
        make_video(tmp_path, name, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        dataset(tmp_path, ['a 6 0', 'b 4 0', 'c 5 0'], num_segments=2)
    assert len(caught) == 1, [str(c.message) for c in caught]
    text = str(caught[0].message)
    assert 'list.txt:2' in text and 'img_00005.jpg' in text and '2 video(s)' in text, text
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # an exact list is silent
        dataset(tmp_path, ['a 6 0', 'b 6 0'], num_segments=2)


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


def test_a_transform_error_names_the_video(tmp_path):
    from ops.transforms import GroupCenterCrop
    make_video(tmp_path, 'small', 3)
    ds = dataset(tmp_path, ['small 3 0'], num_segments=3, transform=GroupCenterCrop(64))
    with pytest.raises(BadVideoError, match='small'):
        ds[0]


def test_sample_seed_makes_a_sample_independent_of_the_global_generators(tmp_path):
    make_video(tmp_path, 'a', 30)
    ds = dataset(tmp_path, ['a 30 0'], num_segments=4)
    ds.set_sample_seed((5, 1))
    torch.manual_seed(0), np.random.seed(0)
    first = frame_ids(ds[0][0])
    state = torch.get_rng_state(), np.random.get_state()[1].copy()
    np.random.seed(123)  # another global state: the same sample
    assert frame_ids(ds[0][0]) == first
    np.random.seed(0)
    ds[0]
    assert np.array_equal(np.random.get_state()[1], state[1]) and torch.equal(torch.get_rng_state(), state[0])
    ds.set_sample_seed((5, 2))  # another epoch: other positions (30 frames, 4 segments: almost surely)
    assert frame_ids(ds[0][0]) != first


def test_a_list_that_is_not_utf8_or_a_folder_is_named(tmp_path):
    lst = tmp_path / 'latin1.txt'
    lst.write_bytes('a 3 0\r\nvid\xe9o 3 1\r\n'.encode('latin-1'))
    with pytest.raises(ValueError, match=f'{lst}:2: not UTF-8'):
        parse_list(str(lst), 'root', 2)
    with pytest.raises(ValueError, match='is a folder, not a list file'):
        parse_list(str(tmp_path), 'root', 2)
    lst.write_bytes('a 3 0\r\nb 3 1\r\n'.encode('latin-1'))  # CRLF lines are fine
    assert [r.line for r in parse_list(str(lst), 'root', 2)] == [1, 2]
