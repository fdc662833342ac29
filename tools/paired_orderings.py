"""Test the paper's orderings of Table 1 on a finished study, paired over validation videos and over seeds.

    python tools/paired_orderings.py OUT [--resamples 10000] [--seed 0] [--root_path DATA] [--json]
    python tools/paired_orderings.py OUT --cache RUN [RUN ...]   # store those runs' scores only (a study's runs
                                                                 # do it as they finish: scripts/ SCORES=...)

For each run ``OUT/checkpoint/{config}_s{seed}/ckpt.best.pth.tar`` the best checkpoint is evaluated on the
validation set with tools/test_models.py's protocol (one centre crop, one clip: main.py's validation), and each
video's scores, label and path are stored in ``OUT/log/{config}_s{seed}/val_scores.npz`` (tools/ensemble.py's
format), reused while it is newer than the checkpoint. Every run must hold the same videos.

Each claimed ordering "A >= B" (all frames >= clustering >= sampling: tsmall vs cumulativeG, cumulativeG vs tsmG;
cumulative >= slope >= uniform, and cumulative vs uniform; G in 8, 16) is tested on the seeds both have:
- effect: the mean over seeds of top-1(A) - top-1(B), in points;
- (a) a paired bootstrap over videos: the videos are resampled with replacement (the same draw for every
  run and seed), the statistic is the effect; its 2.5 and 97.5 percentiles are the 95% CI. This measures the
  uncertainty from the finite validation set for these trained networks, not that of training;
- (b) a paired t-test over seeds on the per-seed differences (df = seeds - 1), one-sided for A > B. With 3 seeds
  a sign-flip (permutation) test cannot go below p = 1/8, so the t-test is the one that can reach 5%; it
  assumes the per-seed differences are roughly normal. The Student-t CDF is computed here (no scipy).
Verdict, at 5% two-sided, from both tests, as the uncertainty has both sources: "holds" when the bootstrap CI is
above 0 AND the t-test's one-sided p for A > B is below 2.5%; "reversed" when the CI is below 0 AND the one-sided
p for B > A is below 2.5%; else "undecided at 5%" (with one seed, the t-test cannot be run: the CI alone). A
per-seed difference is a count of videos, 100/N points each, so a spread below one video cannot be measured: the
t-test's standard deviation is taken as at least 100/N points (3 seeds that differ by exactly the same count
would otherwise give an infinite t; with the floor they weigh as a spread of one video, a little more than the
smallest spread that can be observed, 0.58 of a video). The ten comparisons are not corrected for multiplicity in the verdict;
the table's last column gives Holm's adjusted two-sided p of the t-tests over the comparisons run.
"""
import argparse
import json
import math
import os
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

ORDERINGS = tuple(pair for g in (8, 16) for pair in (
    ('all frames >= clustering', 'tsmall', f'cumulative{g}'),
    ('clustering >= sampling', f'cumulative{g}', f'tsm{g}'),
    ('cumulative >= slope', f'cumulative{g}', f'slope{g}'),
    ('slope >= uniform', f'slope{g}', f'uniform{g}'),
    ('cumulative >= uniform', f'cumulative{g}', f'uniform{g}')))
CACHE = 'val_scores.npz'


# ------------------------------------------------------------------------------------------------ statistics
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def paired_t(diffs: Sequence[float], resolution: float = 0.0) -> Dict[str, Any]:
    """Paired t-test of per-seed differences: t, df and the one-sided p for a mean above 0 (None with < 2 seeds).

    ``resolution``: the smallest difference that can be measured (100/N points for N videos); the standard
    deviation is taken as at least that (``floored`` says when it was), so equal differences give a finite t."""
    n = len(diffs)
    if n < 2:
        return {'t': None, 'df': n - 1, 'p_one_sided': None, 'floored': False}
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    floored = sd < resolution
    sd = max(sd, resolution)
    if sd <= 1e-9 * max(1.0, abs(mean)):  # no floor given and equal differences: the test's limit
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        t = mean / (sd / math.sqrt(n))
    return {'t': t, 'df': n - 1, 'p_one_sided': 1.0 - t_cdf(t, n - 1), 'floored': floored}


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 10000,
                     seed: int = 0) -> Dict[str, float]:
    """Effect and 95% CI (points) of the mean over seeds of top-1(A) - top-1(B), resampling videos.

    ``correct_a``, ``correct_b``: (S, N) 0/1 per seed (row s of both: the same seed) and video."""
    if correct_a.shape != correct_b.shape or correct_a.ndim != 2:
        raise ValueError(f'correctness arrays {correct_a.shape} and {correct_b.shape}: expected equal (seeds, videos)')
    diff = 100.0 * (correct_a.astype(float) - correct_b.astype(float)).mean(axis=0)  # (N,) per video, over seeds
    rng = np.random.default_rng(seed)
    n, stats = diff.shape[0], np.empty(resamples)
    step = max(1, 2_000_000 // max(n, 1))
    for s in range(0, resamples, step):
        k = min(step, resamples - s)
        stats[s:s + k] = diff[rng.integers(0, n, (k, n))].mean(axis=1)
    low, high = np.percentile(stats, [2.5, 97.5])
    return {'effect': float(diff.mean()), 'ci_low': float(low), 'ci_high': float(high)}


def verdict(ci_low: float, ci_high: float, p_one_sided: Optional[float] = None, level: float = 0.05) -> str:
    """'holds', 'reversed' or 'undecided at 5%' from the bootstrap CI and, where there are >= 2 seeds, the
    t-test's one-sided p for A > B: both must agree, each at ``level`` two-sided."""
    if ci_low > 0 and (p_one_sided is None or p_one_sided < level / 2):
        return 'holds'
    if ci_high < 0 and (p_one_sided is None or 1.0 - p_one_sided < level / 2):
        return 'reversed'
    return 'undecided at 5%'


def holm(p_values: Sequence[Optional[float]]) -> List[Optional[float]]:
    """Holm's step-down adjustment of the given p values (None: skipped), each capped at 1."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    out: List[Optional[float]] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        out[i] = running
    return out


# ------------------------------------------------------------------------------------------------ runs
def runs_of(out: str, config: str) -> Dict[int, str]:
    """seed -> best checkpoint of every run of ``config`` in ``OUT/checkpoint``."""
    found, root = {}, os.path.join(out, 'checkpoint')
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        head, _, seed = name.rpartition('_s')
        path = os.path.join(root, name, 'ckpt.best.pth.tar')
        if head == config and seed.isdigit() and os.path.isfile(path):
            found[int(seed)] = path
    return found


def predictions(out: str, run: str, ckpt: str, root_path: Optional[str] = None,
                device: str = 'cpu') -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct (N,) bool, predicted class (N,), video paths (N,)) of a run's best checkpoint on the validation
    set, from its cache ``OUT/log/{run}/val_scores.npz`` when that is newer than the checkpoint."""
    from tools.ensemble import load_scores, save_scores
    cache = os.path.join(out, 'log', run, CACHE)
    if not (os.path.isfile(cache) and os.path.getmtime(cache) >= os.path.getmtime(ckpt)):
        from ops.runtime import select_device
        from tools.test_models import build_parser, evaluate_checkpoint
        argv = ['--weights', ckpt, '-j', '0', '--batch_size', '16', '--device', device]
        cli = build_parser().parse_args(argv + (['--root_path', root_path] if root_path else []))
        scores, labels, paths, names = evaluate_checkpoint(ckpt, cli, [], None, None, select_device(device))
        save_scores(cache, scores, labels, paths, names, weights=[ckpt])
    dump = load_scores(cache)
    pred = dump['scores'].argmax(axis=1)
    return pred == dump['labels'], pred, dump['paths']


def correctness(out: str, configs: Sequence[str], **kw) -> Tuple[Dict[str, Dict[int, np.ndarray]], int]:
    """config -> seed -> (N,) 0/1 correctness, for every finished run; and N. Raises if runs differ in videos."""
    table, videos, first = {}, None, None
    for config in configs:
        for seed, ckpt in runs_of(out, config).items():
            correct, _, paths = predictions(out, f'{config}_s{seed}', ckpt, **kw)
            if videos is None:
                videos, first = paths, ckpt
            elif len(paths) != len(videos) or (paths != videos).any():
                raise ValueError(f'{ckpt}: its validation videos differ from those of {first}')
            table.setdefault(config, {})[seed] = correct
    return table, 0 if videos is None else len(videos)


def compare(table: Dict[str, Dict[int, np.ndarray]], resamples: int, seed: int,
            orderings: Sequence[Tuple[str, str, str]] = ORDERINGS) -> List[Dict]:
    """One result per ordering whose two configurations share at least one seed."""
    results = []
    for claim, a, b in orderings:
        seeds = sorted(set(table.get(a, {})) & set(table.get(b, {})))
        row = {'claim': claim, 'a': a, 'b': b, 'seeds': seeds}
        if seeds:
            ca, cb = np.stack([table[a][s] for s in seeds]), np.stack([table[b][s] for s in seeds])
            row.update(paired_bootstrap(ca, cb, resamples, seed))
            row['per_seed'] = [100.0 * float(ca[i].mean() - cb[i].mean()) for i in range(len(seeds))]
            row.update(paired_t(row['per_seed'], 100.0 / ca.shape[1]))
            row['verdict'] = verdict(row['ci_low'], row['ci_high'], row['p_one_sided'])
        results.append(row)
    two_sided = [None if r.get('p_one_sided') is None else 2 * min(r['p_one_sided'], 1 - r['p_one_sided'])
                 for r in results]
    for r, p in zip(results, holm(two_sided)):
        if r['seeds']:
            r['p_holm'] = p
    return results


def markdown(results: List[Dict], videos: int, resamples: int) -> str:
    lines = [f'| claim | A | B | seeds | A − B (top-1 points, mean over seeds) | 95% CI (bootstrap over {videos} '
             f'videos, {resamples} resamples) | per seed | paired t over seeds (df) | one-sided p (A > B) | verdict '
             f'(CI and t agree, 5%) | Holm p (two-sided, {sum(1 for r in results if r.get("p_holm") is not None)} claims) |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        if not r['seeds']:
            lines.append(f"| {r['claim']} | {r['a']} | {r['b']} | 0 | — | — | — | — | — | not run | — |")
            continue
        t = '—' if r['t'] is None else f"{r['t']:.2f} ({r['df']})"
        if r.get('floored'):
            t += ', sd floored at one video'
        p = '—' if r['p_one_sided'] is None else f"{r['p_one_sided']:.3f}"
        holm_p = '—' if r.get('p_holm') is None else f"{r['p_holm']:.3f}"
        lines.append(f"| {r['claim']} | {r['a']} | {r['b']} | {len(r['seeds'])} | {r['effect']:+.2f} | "
                     f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] | {', '.join(f'{d:+.2f}' for d in r['per_seed'])} | "
                     f"{t} | {p} | {r['verdict']} | {holm_p} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out', help='a study folder (scripts/repro_decisive_cpu.sh OUT)')
    parser.add_argument('--resamples', type=int, default=10000)
    parser.add_argument('--seed', type=int, default=0, help='the bootstrap generator seed')
    parser.add_argument('--root_path', default=None, help="the data set's folder (default: the runs' own)")
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda', 'auto'])
    parser.add_argument('--json', action='store_true', help='print the results as JSON instead of markdown')
    parser.add_argument('--cache', nargs='+', default=None, metavar='RUN',
                        help='only evaluate these runs ({config}_s{seed}) and store their per-video scores')
    args = parser.parse_args(argv)
    if args.cache:
        for run in args.cache:
            ckpt = os.path.join(args.out, 'checkpoint', run, 'ckpt.best.pth.tar')
            if not os.path.isfile(ckpt):
                raise SystemExit(f'{ckpt}: no such checkpoint (run {run} has not finished)')
            correct, _, _ = predictions(args.out, run, ckpt, root_path=args.root_path, device=args.device)
            print(f'{run}: {len(correct)} videos, top-1 {100.0 * correct.mean():.2f} -> '
                  f'{os.path.join(args.out, "log", run, CACHE)}')
        return []
    configs = sorted({c for _, a, b in ORDERINGS for c in (a, b)})
    table, videos = correctness(args.out, configs, root_path=args.root_path, device=args.device)
    if not table:
        raise SystemExit(f'{args.out}/checkpoint: no run of {", ".join(configs)} has a ckpt.best.pth.tar')
    results = compare(table, args.resamples, args.seed)
    print(json.dumps(results, indent=1) if args.json else markdown(results, videos, args.resamples))
    return results


if __name__ == '__main__':
    main()
