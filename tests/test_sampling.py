"""Tests of ops/sampling.py: TSN segments, TSM's twice, clips and dense window, clustering mode's every frame."""
import numpy as np
import pytest

from ops.sampling import cluster_indices, dense_indices, train_indices, val_indices


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
