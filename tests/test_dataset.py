"""Tests of ops/dataset.py: samples of each mode, options, skipping bad videos, per-sample seeds, collate.

The helpers that build frame folders and lists (``make_video``, ``dataset``...) serve tests/test_frames.py and
tests/test_video_list.py too."""
import os
import traceback
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ops.dataset import VideoDataset, collate_videos
from ops.sampling import val_indices
from ops.video_list import BadVideoError

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


def test_option_conflicts_are_errors(tmp_path):
    make_video(tmp_path, 'v', 4)
    for kwargs in (dict(twice_sample=True), dict(num_clips=2), dict(frames=8, dense_sample=True),
                   dict(frames=0), dict(modality='Depth'), dict(on_bad_video='ignore')):
        with pytest.raises(ValueError):
            dataset(tmp_path, ['v 4 0'], **kwargs)
    ds = dataset(tmp_path, ['v 4 0'], num_segments=2, twice_sample=True, random_shift=False)
    assert ds[0][0].shape == (12, H, W) and ds[0][2] == 4


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


def test_clip_sampling_loads_t_frames_at_the_stride(tmp_path):
    make_video(tmp_path, 'v', 20)
    val = dataset(tmp_path, ['v 20 0'], num_segments=4, sample_rate=2, random_shift=False)
    assert frame_ids(val[0][0]) == [6, 8, 10, 12] and val[0][2] == 4  # the centre clip
    test = dataset(tmp_path, ['v 20 0'], num_segments=4, sample_rate=2, random_shift=False, test_mode=True,
                   num_clips=3)
    assert frame_ids(test[0][0]) == [0, 2, 4, 6, 6, 8, 10, 12, 13, 15, 17, 19]
    train = dataset(tmp_path, ['v 20 0'], num_segments=4, sample_rate=2)
    train.set_sample_seed((0, 0))
    ids = frame_ids(train[0][0])
    assert np.diff(ids).tolist() == [2, 2, 2] and ids == frame_ids(train[0][0])  # seeded per sample
    make_video(tmp_path, 'short', 3)
    short = dataset(tmp_path, ['short 3 0'], num_segments=4, sample_rate=1, random_shift=False)
    assert frame_ids(short[0][0]) == [0, 1, 2, 2]  # the last frame repeated


def test_clip_sampling_option_conflicts_are_errors(tmp_path):
    make_video(tmp_path, 'v', 4)
    for kwargs in (dict(sample_rate=0), dict(sample_rate=2, frames=8), dict(sample_rate=2, dense_sample=True),
                   dict(sample_rate=2, twice_sample=True, random_shift=False)):
        with pytest.raises(ValueError, match='sample_rate'):
            dataset(tmp_path, ['v 4 0'], **kwargs)


def test_rgb_new_length_stacks_consecutive_frames_per_position(tmp_path):
    """Early fusion's input: each position takes K consecutive RGB frames, the last repeated at the video's end."""
    make_video(tmp_path, 'v', 16)
    frames, _, length = dataset(tmp_path, ['v 16 0'], num_segments=4, new_length=3, random_shift=False)[0]
    assert frames.shape == (4 * 3 * 3, H, W) and length == 4
    starts = val_indices(16, 4, new_length=3).tolist()
    assert frame_ids(frames) == [p + k for p in starts for k in range(3)]
    make_video(tmp_path, 'short', 2)
    frames, _, _ = dataset(tmp_path, ['short 2 0'], num_segments=1, new_length=3, random_shift=False)[0]
    assert frame_ids(frames) == [0, 1, 1]
