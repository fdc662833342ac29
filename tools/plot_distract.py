"""Accuracy against the fraction of distracting frames (scripts/repro_distract_cpu.sh): a table and a figure.

    python tools/plot_distract.py ROOT [--fractions 0 25 50 75] [--configs tsm8 tsmall cumulative8 uniform8]
        [--figure docs/figures/move4mnist_distract_cpu.png]

``ROOT/f{P}`` is the study folder of the data set in which P% of each video's frames are distracting; each of
its runs ``log/{config}_s{seed}`` is read as tools/summarize_study.py reads it (the evaluated best checkpoint's
top-1, ``eval.txt``). Prints a markdown table (one row a model, one column a fraction: top-1 mean ± std over
seeds, and how many of the seeds took off), then each model against ``--baseline`` (TSM-8, the sparse sampling the
paper's motivation says loses rare informative frames) at each fraction: the difference of means and Welch's
unequal-variance t-test over the seeds (unpaired: the sweep's seeds ran on two machines, and the order of some is
not recorded), "higher", "lower" or "undecided" at 5% two-sided; and plots top-1 against the fraction, one line a model, error bars the
standard deviation over seeds (none with one seed).

``--record CSV`` keeps every run's result beside the figure (``docs/distract_runs.csv``): the runs found under
ROOT are added to the file's, replacing a row of the same model, fraction and seed, and the table and figure
show them all, so that sweeps run on other machines or in other sessions (whose run folders are gone) count.
"""
import argparse
import csv
import os
import statistics
from typing import Dict, List, Optional, Sequence

from tools.summarize_study import mean_std, runs_of, took_off

NAMES = {'tsm8': 'TSM-8', 'tsm16': 'TSM-16', 'tsmall': 'TSM-all', 'uniform8': 'ours-uniform-8',
         'slope8': 'ours-slope-8', 'cumulative8': 'ours-cumulative-8', 'uniform16': 'ours-uniform-16',
         'slope16': 'ours-slope-16', 'cumulative16': 'ours-cumulative-16'}


def collect(root: str, fractions: Sequence[int], configs: Sequence[str]) -> Dict[str, Dict[int, List[Dict]]]:
    """config -> fraction -> finished runs (summarize_study.runs_of: seed, top1, wall, epochs, curve)."""
    return {c: {p: runs_of(os.path.join(root, f'f{p}'), c) for p in fractions} for c in configs}


RECORD_FIELDS = ('config', 'fraction', 'seed', 'top1', 'took_off', 'machine')


def read_record(path: str) -> List[Dict]:
    """The rows of a ``--record`` CSV (lines starting with ``#`` are comments); missing file: none.

    Raises:
        SystemExit: naming the file and line of a row that does not parse.
    """
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, newline='') as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip() and not line.startswith('#')]
    reader = csv.DictReader(line for _, line in lines)
    if reader.fieldnames is None or tuple(reader.fieldnames) != RECORD_FIELDS:
        raise SystemExit(f'{path}: the header must be {",".join(RECORD_FIELDS)}')
    for (number, _), row in zip(lines[1:], reader):
        try:
            if row['took_off'] not in ('yes', 'no'):
                raise ValueError(f"took_off is {row['took_off']!r}, not yes or no")
            rows.append({'config': row['config'], 'fraction': int(row['fraction']), 'seed': int(row['seed']),
                         'top1': float(row['top1']), 'took_off': row['took_off'] == 'yes',
                         'machine': row['machine'] or ''})
        except (TypeError, ValueError) as err:
            raise SystemExit(f'{path}, line {number}: {err}') from err
    return rows


def merge_record(path: str, results: Dict[str, Dict[int, List[Dict]]], machine: str, level: float) -> None:
    """Add the runs of ``results`` to the CSV at ``path`` (a run replaces the row of its model, fraction and seed),
    write it back atomically, and put the file's other rows of the models and fractions shown into ``results``."""
    rows = {(r['config'], r['fraction'], r['seed']): r for r in read_record(path)}
    for config, by_fraction in results.items():
        for p, runs in by_fraction.items():
            for r in runs:
                rows[(config, p, r['seed'])] = {'config': config, 'fraction': p, 'seed': r['seed'],
                                                'top1': r['top1'], 'took_off': took_off(r, level), 'machine': machine}
    header = []  # the file's comment lines stay at its top
    if os.path.exists(path):
        with open(path) as f:
            header = [line for line in f if line.startswith('#')]
    tmp = f'{path}.tmp'
    with open(tmp, 'w', newline='') as f:
        f.writelines(header)
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow(RECORD_FIELDS)
        for key in sorted(rows):
            r = rows[key]
            writer.writerow([r['config'], r['fraction'], r['seed'], f"{r['top1']:.3f}",
                             'yes' if r['took_off'] else 'no', r['machine']])
    os.replace(tmp, path)
    for (config, p, seed), r in sorted(rows.items()):
        if config in results and p in results[config] and seed not in {x['seed'] for x in results[config][p]}:
            results[config][p].append({'seed': seed, 'top1': r['top1'], 'took_off': r['took_off'], 'curve': []})


def _took_off(run: Dict, level: float) -> bool:
    """A recorded run carries its answer; a run read from its folder is judged from its curve."""
    return run['took_off'] if 'took_off' in run else took_off(run, level)


def markdown(results: Dict[str, Dict[int, List[Dict]]], fractions: Sequence[int], level: float = 50.0) -> str:
    lines = ['| model | ' + ' | '.join(f'{p}% distracting' for p in fractions) + ' |',
             '|---|' + '---|' * len(fractions)]
    for config, by_fraction in results.items():
        cells = []
        for p in fractions:
            runs = by_fraction[p]
            cells.append(f"{mean_std([r['top1'] for r in runs])}, took off "
                         f"{sum(_took_off(r, level) for r in runs)}/{len(runs)}" if runs else 'not run')
        lines.append(f"| {NAMES.get(config, config)} | " + ' | '.join(cells) + ' |')
    lines += ['', f'top-1 %: the evaluated best checkpoint, mean ± std over seeds; took off: passed {level:g}% '
              'validation top-1 at some epoch.']
    return '\n'.join(lines)


def welch(a: Sequence[float], b: Sequence[float]) -> Optional[Dict[str, float]]:
    """Welch's t-test of mean(a) - mean(b): difference, t, Welch-Satterthwaite df and two-sided p; None when a
    side has fewer than 2 values or neither side has any spread (nothing to scale the difference by)."""
    from tools.paired_orderings import t_cdf
    if len(a) < 2 or len(b) < 2:
        return None
    diff = statistics.mean(a) - statistics.mean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return None
    t = diff / (va + vb) ** 0.5
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return {'diff': diff, 't': t, 'df': df, 'p': 2.0 * min(t_cdf(t, df), 1.0 - t_cdf(t, df))}


def against(results: Dict[str, Dict[int, List[Dict]]], fractions: Sequence[int], baseline: str) -> str:
    """A markdown table: every other model minus ``baseline`` at each fraction (Welch, 5% two-sided)."""
    if baseline not in results:
        return ''
    lines = [f'| model − {NAMES.get(baseline, baseline)} (points; Welch t, df, two-sided p) | '
             + ' | '.join(f'{p}% distracting' for p in fractions) + ' |', '|---|' + '---|' * len(fractions)]
    for config, by_fraction in results.items():
        if config == baseline or not any(by_fraction.values()):
            continue
        cells = []
        for p in fractions:
            test = welch([r['top1'] for r in by_fraction[p]], [r['top1'] for r in results[baseline][p]])
            if test is None:
                cells.append('—')
                continue
            call = 'undecided' if test['p'] >= 0.05 else ('higher' if test['diff'] > 0 else 'lower')
            cells.append(f"{test['diff']:+.2f} (t {test['t']:.2f}, df {test['df']:.1f}, p {test['p']:.3f}): {call}")
        lines.append(f"| {NAMES.get(config, config)} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot(results: Dict[str, Dict[int, List[Dict]]], fractions: Sequence[int], path: str) -> None:
    """Top-1 against the fraction, one line a model (only the fractions it has runs of, shifted sideways by
    under a point so that equal values stay visible), error bars = std (clipped at 100%), each seed a small dot
    beside its mean (a split such as 47/96/96 shows); y from 20% (chance: 25%) to 100%."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (config, by_fraction) in enumerate(results.items()):
        xs = [p for p in fractions if by_fraction[p]]
        if not xs:
            continue
        top1s = [[r['top1'] for r in by_fraction[p]] for p in xs]
        dodge = (i - (len(results) - 1) / 2) * 0.8  # equal values stay visible side by side
        means = [statistics.mean(t) for t in top1s]
        stds = [statistics.stdev(t) if len(t) > 1 else 0.0 for t in top1s]
        line = ax.errorbar([x + dodge for x in xs], means,
                           yerr=[stds, [min(s, 100.0 - m) for m, s in zip(means, stds)]],
                           marker='o', capsize=3, label=NAMES.get(config, config))
        seeds_x = [x + dodge + 0.9 for x, t in zip(xs, top1s) for _ in t]
        ax.scatter(seeds_x, [v for t in top1s for v in t], s=9, color=line[0].get_color(), alpha=0.6, zorder=3)
    ax.axhline(25.0, color='grey', linestyle=':', linewidth=1, label='chance')
    ax.set_ylim(20.0, 101.5)  # a seed at 100% stays visible
    ax.set_xticks(list(fractions))
    ax.set_xlabel("distracting frames (% of each video's 32)")
    ax.set_ylabel('top-1 (%)')
    ax.set_title('Move4MNIST: accuracy against distracting frames\n(mean over seeds, bars: std, dots: each seed)',
                 fontsize=10)
    ax.legend(fontsize=8, loc='lower left')  # the curves lie high
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='the sweep folder (its f<P> subfolders are studies)')
    parser.add_argument('--fractions', type=int, nargs='+', default=[0, 25, 50, 75])
    parser.add_argument('--configs', nargs='+', default=['tsm8', 'tsmall', 'cumulative8', 'uniform8'])
    parser.add_argument('--figure', default='docs/figures/move4mnist_distract_cpu.png')
    parser.add_argument('--took_off', type=float, default=50.0, help='the validation top-1 (%%) a seed must pass')
    parser.add_argument('--record', default=None, help="a CSV of every run's result (e.g. docs/distract_runs.csv):"
                        " ROOT's runs are added to it, and the table and figure show all its runs")
    parser.add_argument('--baseline', default='tsm8', help='the model every other is tested against')
    parser.add_argument('--machine', default='', help="--record: what ran ROOT's runs (e.g. 'AMD EPYC without AMX')")
    args = parser.parse_args(argv)
    results = collect(args.root, args.fractions, args.configs)
    if args.record:
        merge_record(args.record, results, args.machine, args.took_off)
    if not any(runs for by_fraction in results.values() for runs in by_fraction.values()):
        raise SystemExit(f'{args.root}: no finished run of {", ".join(args.configs)} in f'
                         f'{{{",".join(map(str, args.fractions))}}}/log')
    table = markdown(results, args.fractions, args.took_off)
    tests = against(results, args.fractions, args.baseline)
    table += '\n\n' + tests if tests else ''
    plot(results, args.fractions, args.figure)
    print(table + f'\n\nfigure: {args.figure}')
    return table


if __name__ == '__main__':
    main()
