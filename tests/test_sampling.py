"""Tests of ops/sampling.py: TSN segments, TSM's twice, clips and dense window, clustering mode's every frame."""
import numpy as np
import pytest

from ops.sampling import clip_indices, cluster_indices, dense_indices, seeded_random, train_indices, val_indices


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


def test_clip_indices_train_one_strided_clip_at_a_random_place():
    rng = np.random.RandomState(0)
    draws = [clip_indices(40, 4, 3, 'train', rng=rng) for _ in range(200)]
    for idx in draws:
        assert len(idx) == 4 and (np.diff(idx) == 3).all() and 0 <= idx[0] and idx[-1] < 40
    starts = {int(d[0]) for d in draws}
    assert starts == set(range(40 - 10 + 1))  # every start of a 10-frame window is drawn, none other


def test_clip_indices_centre_and_evenly_spread_test_clips():
    assert clip_indices(20, 4, 2, 'val').tolist() == [6, 8, 10, 12]  # window 7, starts 0..13, centre 6
    assert clip_indices(20, 4, 2, 'test').tolist() == [6, 8, 10, 12]  # one test clip is the centre clip
    clips = clip_indices(100, 8, 2, 'test', num_clips=10).reshape(10, 8)
    assert clips[:, 0].tolist() == np.linspace(0, 85, 10).astype(int).tolist()  # first to last start
    assert (np.diff(clips, axis=1) == 2).all() and clips.max() == 99


def test_clip_indices_short_video_repeats_its_last_frame():
    assert clip_indices(5, 4, 2, 'train', rng=np.random.RandomState(0)).tolist() == [0, 2, 4, 4]
    assert clip_indices(3, 4, 1, 'val').tolist() == [0, 1, 2, 2]
    assert clip_indices(3, 2, 1, 'test', num_clips=3).tolist() == [0, 1, 0, 1, 1, 2]


def test_clip_indices_under_a_seed_depend_on_the_key_alone():
    with seeded_random((0, 1, 7)):
        first = clip_indices(500, 8, 4, 'train')
    np.random.seed(99)
    with seeded_random((0, 1, 7)):
        again = clip_indices(500, 8, 4, 'train')
    with seeded_random((0, 2, 7)):
        other = clip_indices(500, 8, 4, 'train')
    assert first.tolist() == again.tolist() and first.tolist() != other.tolist()


@pytest.mark.parametrize('kwargs', [dict(clip_len=0), dict(sample_rate=0), dict(mode='dense'),
                                    dict(mode='train', num_clips=2)])
def test_clip_indices_refuses_bad_arguments(kwargs):
    args = dict(num_frames=10, clip_len=4, sample_rate=1, mode='test') | kwargs
    with pytest.raises(ValueError, match='clip_indices'):
        clip_indices(**args)
