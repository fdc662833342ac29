"""Accuracy against the fraction of distracting frames (scripts/repro_distract_cpu.sh): a table and a figure.

    python tools/plot_distract.py ROOT [--fractions 0 25 50 75] [--configs tsm8 tsmall cumulative8 uniform8]
        [--figure docs/figures/move4mnist_distract_cpu.png]

``ROOT/f{P}`` is the study folder of the data set in which P% of each video's frames are distracting; each of
its runs ``log/{config}_s{seed}`` is read as tools/summarize_study.py reads it (the evaluated best checkpoint's
top-1, ``eval.txt``). Prints a markdown table (one row a model, one column a fraction: top-1 mean ± std over
seeds, and how many of the seeds took off) and plots top-1 against the fraction, one line a model, error bars the
standard deviation over seeds (none with one seed).
"""
import argparse
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


def markdown(results: Dict[str, Dict[int, List[Dict]]], fractions: Sequence[int], level: float = 50.0) -> str:
    lines = ['| model | ' + ' | '.join(f'{p}% distracting' for p in fractions) + ' |',
             '|---|' + '---|' * len(fractions)]
    for config, by_fraction in results.items():
        cells = []
        for p in fractions:
            runs = by_fraction[p]
            cells.append(f"{mean_std([r['top1'] for r in runs])}, took off "
                         f"{sum(took_off(r, level) for r in runs)}/{len(runs)}" if runs else 'not run')
        lines.append(f"| {NAMES.get(config, config)} | " + ' | '.join(cells) + ' |')
    lines += ['', f'top-1 %: the evaluated best checkpoint, mean ± std over seeds; took off: passed {level:g}% '
              'validation top-1 at some epoch.']
    return '\n'.join(lines)


def plot(results: Dict[str, Dict[int, List[Dict]]], fractions: Sequence[int], path: str) -> None:
    """Top-1 against the fraction, one line a model (only the fractions it has runs of, shifted sideways by
    under a point so that equal values stay visible), error bars = std; y from 20% (chance: 25%) to 100%."""
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
        ax.errorbar([x + dodge for x in xs], [statistics.mean(t) for t in top1s],
                    yerr=[statistics.stdev(t) if len(t) > 1 else 0.0 for t in top1s],
                    marker='o', capsize=3, label=NAMES.get(config, config))
    ax.axhline(25.0, color='grey', linestyle=':', linewidth=1, label='chance')
    ax.set_ylim(20.0, 100.0)
    ax.set_xticks(list(fractions))
    ax.set_xlabel("distracting frames (% of each video's 32)")
    ax.set_ylabel('top-1 (%)')
    ax.set_title('Move4MNIST: accuracy against distracting frames\n(mean over seeds, bars: std)', fontsize=10)
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
    args = parser.parse_args(argv)
    results = collect(args.root, args.fractions, args.configs)
    if not any(runs for by_fraction in results.values() for runs in by_fraction.values()):
        raise SystemExit(f'{args.root}: no finished run of {", ".join(args.configs)} in f'
                         f'{{{",".join(map(str, args.fractions))}}}/log')
    table = markdown(results, args.fractions, args.took_off)
    plot(results, args.fractions, args.figure)
    print(table + f'\n\nfigure: {args.figure}')
    return table


if __name__ == '__main__':
    main()
