"""tools/paired_orderings.py: the t CDF against table values, the paired statistics on synthetic correctness with
known answers, and a tiny study folder end to end (evaluation, per-video cache, table)."""
import math
import os

import numpy as np
import pytest

import main as train_main
from tools import paired_orderings as po


@pytest.mark.parametrize('t, df, upper', [(2.920, 2, 0.05), (4.303, 2, 0.025), (12.706, 1, 0.025),
                                          (1.812, 10, 0.05), (2.228, 10, 0.025), (0.0, 3, 0.5), (1.960, 1e6, 0.025)])
def test_t_cdf_matches_the_table(t, df, upper):
    assert 1.0 - po.t_cdf(t, df) == pytest.approx(upper, abs=5e-5)
    assert po.t_cdf(-t, df) == pytest.approx(upper, abs=5e-5)  # symmetric


def test_t_cdf_df2_closed_form():
    for t in (-5.0, -0.3, 0.7, 3.3, 40.0):
        assert po.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_paired_t_known_values():
    r = po.paired_t([1.0, 2.0, 3.0])  # mean 2, sd 1: t = 2 sqrt(3)
    assert r['t'] == pytest.approx(2 * math.sqrt(3)) and r['df'] == 2
    assert r['p_one_sided'] == pytest.approx(0.5 - r['t'] / (2 * math.sqrt(2 + r['t'] ** 2)))
    assert po.paired_t([0.0, 0.0, 0.0])['p_one_sided'] == pytest.approx(0.5)
    assert not r['floored']


def test_the_spread_is_floored_at_one_video_so_equal_differences_give_a_finite_t():
    one = 100 / 240  # one video of 240, in points
    equal = po.paired_t([-3.75, -3.75, -3.75], one)
    assert equal['floored'] and equal['t'] == pytest.approx(-3.75 / (one / math.sqrt(3)))  # -15.6
    assert 1 - equal['p_one_sided'] < 0.025  # decided: every seed 9 videos behind
    near = po.paired_t([-3.75, -3.75, -3.75 - one], one)  # the smallest spread that can be seen: 0.58 video
    assert near['floored'] and near['t'] < 0
    assert abs(near['t']) > abs(equal['t'])  # a larger mean effect, the same floored spread: monotone
    wide = po.paired_t([-1.0, -3.75, -6.5], one)  # a real spread is not touched
    assert not wide['floored'] and wide['t'] == pytest.approx(po.paired_t([-1.0, -3.75, -6.5])['t'])
    assert po.paired_t([2.0, 2.0])['t'] == math.inf  # no floor given: the test's limit
    a, b = np.zeros((3, 80), bool), np.zeros((3, 80), bool)
    a[:, :10] = True  # every seed: +12.5 points, 10 videos of 80
    rows = po.compare({'slope8': dict(enumerate(a)), 'uniform8': dict(enumerate(b))}, 500, 0)
    row = next(r for r in rows if (r['a'], r['b']) == ('slope8', 'uniform8'))
    assert row['floored'] and row['t'] == pytest.approx(12.5 / (1.25 / math.sqrt(3))) and row['verdict'] == 'holds'
    assert '(2), sd floored at one video |' in po.markdown(rows, 80, 500)


def test_identical_runs_differ_by_zero_and_stay_undecided():
    rng = np.random.default_rng(1)
    c = rng.random((3, 300)) < 0.7
    r = po.paired_bootstrap(c, c.copy(), 1000, 0)
    assert r == {'effect': 0.0, 'ci_low': 0.0, 'ci_high': 0.0}
    assert po.verdict(r['ci_low'], r['ci_high']) == 'undecided at 5%'


def test_better_on_many_videos_holds_and_the_ci_has_the_normal_width():
    """400 videos, A right and B wrong on 100 of them, equal elsewhere: effect 25 points, standard error
    100 sqrt(0.25 * 0.75 / 400) = 2.165, so the 95% CI is about 25 ± 4.24."""
    b = np.zeros((2, 400), bool)
    a = b.copy()
    a[:, :100] = True
    r = po.paired_bootstrap(a, b, 10000, 0)
    assert r['effect'] == pytest.approx(25.0)
    assert r['ci_low'] == pytest.approx(25 - 4.24, abs=0.6) and r['ci_high'] == pytest.approx(25 + 4.24, abs=0.6)
    assert po.verdict(r['ci_low'], r['ci_high']) == 'holds'
    back = po.paired_bootstrap(b, a, 10000, 0)
    assert po.verdict(back['ci_low'], back['ci_high']) == 'reversed'
    assert back['ci_low'] == pytest.approx(-r['ci_high']) and po.paired_bootstrap(a, b, 10000, 0) == r  # seeded


def test_effect_is_the_mean_over_seeds_and_a_small_difference_is_undecided():
    a, b = np.zeros((2, 100), bool), np.zeros((2, 100), bool)
    a[0, :3] = True  # seed 0: +3 points; seed 1: -1 point
    b[1, 50] = True
    rows = po.compare({'tsm8': {0: b[0], 1: b[1]}, 'cumulative8': {0: a[0], 1: a[1]}}, 2000, 0)
    row = next(r for r in rows if (r['a'], r['b']) == ('cumulative8', 'tsm8'))
    assert row['seeds'] == [0, 1] and row['per_seed'] == pytest.approx([3.0, -1.0])
    assert row['effect'] == pytest.approx(1.0) and row['verdict'] == 'undecided at 5%'
    assert all(not r['seeds'] for r in rows if r is not row)
    table = po.markdown(rows, 100, 2000)
    assert '| clustering >= sampling | cumulative8 | tsm8 | 2 | +1.00 |' in table
    assert '| slope >= uniform | slope16 | uniform16 | 0 | — | — | — | — | — | not run | — |' in table


def test_the_verdict_needs_the_bootstrap_and_the_t_test_to_agree():
    assert po.verdict(1.0, 5.0, 0.01) == 'holds'
    assert po.verdict(1.0, 5.0, 0.03) == 'undecided at 5%'  # the videos decide, the seeds do not
    assert po.verdict(-1.0, 5.0, 0.001) == 'undecided at 5%'  # the seeds decide, the videos do not
    assert po.verdict(-5.0, -1.0, 0.99) == 'reversed'
    assert po.verdict(-5.0, -1.0, 0.96) == 'undecided at 5%'
    assert po.verdict(1.0, 5.0) == 'holds'  # one seed: no t-test, the CI alone


def test_holm_adjusts_step_down_and_keeps_the_order():
    # sorted 0.01, 0.03, 0.04: 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06
    assert po.holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert po.holm([0.5, 0.9]) == [1.0, 1.0]


def test_a_tiny_study_end_to_end(tmp_path, monkeypatch):
    """2 configurations x 2 seeds, 1 epoch: each run's per-seed difference is that of main.py's validation, the
    per-video predictions are cached next to the run and reused."""
    from tools.make_move4mnist import main as make_move4mnist
    data, out = tmp_path / 'data', tmp_path / 'study'
    make_move4mnist(['--out', str(data), '--num_train', '8', '--num_val', '8', '--seed', '0'])
    flags = {'tsm8': ['--num_segments', '8'], 'cumulative8': ['--cluster', 'cumulative', '--frames', 'all',
                                                              '--num_segments', '8']}
    top1 = {}
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    for config, model in flags.items():
        for seed in (0, 1):
            name = f'{config}_s{seed}'
            top1[name] = train_main.main([
                'move4mnist', 'RGB', '--root_path', str(data), '--arch', 'resnet18', '-b', '4', '-j', '0',
                '--img_size', '32', '--scale_size', '36', '--pretrain', 'scratch', '--shift', '--npb', '--device',
                'cpu', '--lr', '0.01', '--epochs', '1', '--root_log', str(out / 'log'), '--root_model',
                str(out / 'checkpoint'), '--store_name', name, '--seed', str(seed), *model])['best_prec1']
    assert po.main([str(out), '--cache', 'tsm8_s1']) == []  # what a study's run does as it finishes
    assert (out / 'log' / 'tsm8_s1' / po.CACHE).is_file() and not (out / 'log' / 'tsm8_s0' / po.CACHE).exists()
    with pytest.raises(SystemExit, match='tsm8_s7'):
        po.main([str(out), '--cache', 'tsm8_s7'])
    rows = po.main([str(out), '--resamples', '500'])
    row = next(r for r in rows if (r['a'], r['b']) == ('cumulative8', 'tsm8'))
    assert row['seeds'] == [0, 1]
    assert row['per_seed'] == pytest.approx([top1[f'cumulative8_s{s}'] - top1[f'tsm8_s{s}'] for s in (0, 1)])
    assert row['ci_low'] <= row['effect'] <= row['ci_high']
    cache = out / 'log' / 'tsm8_s0' / po.CACHE
    assert cache.is_file()
    stamp = os.path.getmtime(cache)

    def no_evaluation(*args, **kwargs):
        raise AssertionError('the cache was not reused')
    monkeypatch.setattr('tools.test_models.evaluate_checkpoint', no_evaluation)
    assert po.main([str(out), '--resamples', '500', '--json']) == rows and os.path.getmtime(cache) == stamp
