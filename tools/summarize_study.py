"""Summarise a Move4MNIST study (scripts/repro_move4mnist_cpu.sh) as a markdown table and a figure.

``python tools/summarize_study.py OUT CONFIG [CONFIG ...]`` reads, for each run ``OUT/log/{config}_s{seed}``,
the evaluated top-1 (``eval.txt``: main.py's ``Testing Results`` line), the wall seconds (``done``) and the
epochs (``args.txt``); profiles each configuration at the paper's size (ResNet-18, 224 px, 32 frames) with
``tools/profile_model.py``; prints the table (top-1 mean ± std over seeds, and each seed's), a table of each
run's validation top-1 by epoch (``log.csv``) with the epoch it first passes 50%, and writes
``OUT/top1_vs_gmacs.png`` (mean top-1 as a dot and each seed as a cross, against GMACs). ``--brief`` prints
only a short table (each model, the frames it sees, GMACs, top-1 and time) and where the runs are
(``scripts/quickstart.sh``). ``--decisive`` prints the decisive study's table (docs/RESULTS.md, first; the
configurations default to the paper's 9 of Table 1, in its order): seeds, how many took off (passed
``--took_off`` % validation top-1 at some epoch), top-1 mean ± std, the paper's figure, GMACs, seconds per epoch;
then each row's validation curves, seeds in order, the ``--warm`` starting points' first (they are no row of the
table). scripts/repro_decisive_cpu.sh prints it (``SUMMARY_FLAGS=--decisive``, its default).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = re.compile(r'Prec@1 ([\d.]+)')
PAPER = {'tsm8': '90.13 ± 0.38', 'tsm16': '93.78 ± 0.33', 'tsmall': '98.83 ± 0.16', 'uniform8': '90.25 ± 0.28',
         'slope8': '93.33 ± 0.19', 'cumulative8': '94.08 ± 0.25', 'uniform16': '92.73 ± 0.25',
         'slope16': '94.06 ± 0.18', 'cumulative16': '95.27 ± 0.21'}
TABLE1 = ('tsm8', 'tsm16', 'tsmall', 'uniform8', 'slope8', 'cumulative8', 'uniform16', 'slope16', 'cumulative16')


def model_flags(config: str) -> List[str]:
    """main.py's model flags for a configuration name (tsm8, tsmall, cumulative16, ...)."""
    if config.startswith('tsm'):
        return ['--num_segments', '32' if config == 'tsmall' else config[3:]]
    method = config.rstrip('0123456789')
    return ['--cluster', method, '--frames', '32', '--num_segments', config[len(method):]]


def profile(config: str) -> Dict[str, float]:
    """GMACs and activation MB per video at the paper's size, from tools/profile_model.py --json."""
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'profile_model.py'), 'move4mnist', 'RGB', '--arch', 'resnet18',
           '--img_size', '224', '--shift', '--pretrain', 'scratch', '--device', 'cpu', '--json', *model_flags(config)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def frames_seen(config: str) -> str:
    """What a configuration's network sees of a 32-frame video, in words."""
    if config.startswith('tsm'):
        n = 32 if config == 'tsmall' else int(config[3:])
        return 'all 32 frames' if n == 32 else f'{n} sampled frames'
    method = config.rstrip('0123456789')
    return f'all 32 frames -> {config[len(method):]} {method} clusters'


def brief(out: str, configs: List[str], no_profile: bool, warm: Optional[str] = None) -> str:
    """The short table of a few runs: model, frames it sees, GMACs, top-1 (each seed), minutes; then paths.
    ``warm`` names the configuration the others started from (scripts/repro_move4mnist_cpu.sh's WARM)."""
    lines = ['| model | frames per video | GMACs/video (224 px) | top-1 % (best checkpoint, re-evaluated) | min |',
             '|---|---|---|---|---|']
    for config in configs:
        runs = runs_of(out, config)
        gmacs = None if no_profile else profile(config).get('gmacs_per_video')
        top1 = ', '.join(f"{r['top1']:.1f}" for r in runs) or 'not finished'
        minutes = ', '.join(f"{r['wall'] / 60:.1f}" for r in runs) or '—'
        name = f'{config} (the others start from it)' if config == warm else config
        lines.append(f"| {name} | {frames_seen(config)} | {f'{gmacs:.2f}' if gmacs else '—'} | {top1} | {minutes} |")
    lines += ['', f"checkpoints: {os.path.join(out, 'checkpoint', '<model>_s<seed>', 'ckpt.best.pth.tar')}",
              f"TensorBoard: tensorboard --logdir {os.path.join(out, 'log')}"]
    return '\n'.join(lines)


def took_off(run: Dict, level: float) -> bool:
    """Whether a finished run's validation top-1 passed ``level`` at some epoch (its evaluated best counts too)."""
    return take_off(run['curve'], level) is not None or run['top1'] > level


def decisive(out: str, configs: List[str], no_profile: bool, level: float,
             time_seeds: Optional[List[int]] = None, warm: Optional[str] = None) -> str:
    """The decisive study's table: one row a configuration, in the order given (default: Table 1's), then each
    row's validation curves (the starting point ``warm``'s first).
    ``time_seeds``: the seeds whose wall times give s/epoch (those that ran on an otherwise idle machine);
    None: every seed."""
    lines = [f'| model | seeds | took off (> {level:g}% val. top-1) | top-1 % (mean ± std) | per seed | '
             f'paper top-1 | GMACs/video (224 px) | s/epoch (wall incl. validation) |', '|---' * 8 + '|']
    for config in configs:
        runs = runs_of(out, config)
        gmacs = None if no_profile else profile(config).get('gmacs_per_video')
        timed = [r for r in runs if time_seeds is None or r['seed'] in time_seeds]
        per_epoch = statistics.mean(r['wall'] / r['epochs'] for r in timed) if timed else None
        took = f"{sum(took_off(r, level) for r in runs)}/{len(runs)}" if runs else '—'
        per_seed = ', '.join(f"{r['top1']:.2f}" for r in sorted(runs, key=lambda r: r['seed'])) or '—'
        lines.append(f"| {config} | {len(runs)} | {took} | {mean_std([r['top1'] for r in runs])} | {per_seed} | "
                     f"{PAPER.get(config, '—')} | {f'{gmacs:.2f}' if gmacs else '—'} | "
                     f"{f'{per_epoch:.0f}' if per_epoch else '—'} |")
    seeds = 'seeds' if time_seeds is None else f"seeds {', '.join(map(str, time_seeds))}"
    lines += ['', 'per seed: top-1 % of each finished seed, in seed order.',
              "s/epoch: each run's wall seconds (`done`: training, the validation after each epoch and the "
              f"final evaluation; not its starting point's) over its epochs, mean over {seeds}.", '',
              f'| run | validation top-1 by epoch, seeds in order (the first passing {level:g}% is the take-off) |',
              '|---|---|']
    for config in ([warm] if warm else []) + configs:
        runs = sorted(runs_of(out, config), key=lambda r: r['seed'])
        if runs:
            name = f"{config}_s{', s'.join(str(r['seed']) for r in runs)}" + (' (starting points)' if config == warm else '')
            lines.append(f"| {name} | {' / '.join(curve_text(r['curve']) for r in runs)} |")
    return '\n'.join(lines)


def runs_of(out: str, config: str) -> List[Dict[str, float]]:
    """Every finished seed of a configuration: top-1, wall seconds, epochs."""
    found = []
    log = os.path.join(out, 'log')
    for name in sorted(os.listdir(log)) if os.path.isdir(log) else []:
        if not re.fullmatch(re.escape(config) + r'_s\d+', name):
            continue
        folder = os.path.join(log, name)
        try:
            top1 = float(RESULT.search(open(os.path.join(folder, 'eval.txt')).read()).group(1))
            wall = float(open(os.path.join(folder, 'done')).read())
            epochs = json.load(open(os.path.join(folder, 'args.txt')))['epochs']
        except (OSError, AttributeError, ValueError, KeyError):
            continue  # an unfinished run
        found.append({'seed': int(name.rsplit('_s', 1)[1]), 'top1': top1, 'wall': wall, 'epochs': epochs,
                      'curve': validation_curve(os.path.join(folder, 'log.csv'))})
    return found


def unfinished_of(out: str, config: str, finished: List[Dict[str, float]]) -> Dict[str, List[Tuple[int, float]]]:
    """Runs of a configuration that started but have no evaluated result (e.g. stopped by a time limit):
    name -> the validation curve they reached."""
    log, done = os.path.join(out, 'log'), {f"{config}_s{r['seed']}" for r in finished}
    names = sorted(os.listdir(log)) if os.path.isdir(log) else []
    return {name: validation_curve(os.path.join(log, name, 'log.csv')) for name in names
            if re.fullmatch(re.escape(config) + r'_s\d+', name) and name not in done}


def validation_curve(log_csv: str) -> List[Tuple[int, float]]:
    """(epoch, top-1) of each validation in a run's ``log.csv`` (main.py's ``Testing Results`` lines), in
    order; the epoch is that of the last ``Epoch: [e]`` line before it (every epoch with --eval-freq 1)."""
    try:
        text = open(log_csv).read()
    except OSError:
        return []
    curve, epoch = [], -1
    for m in re.finditer(r'Epoch: \[(\d+)\]|Testing Results: Prec@1 ([\d.]+)', text):
        if m.group(1) is not None:
            epoch = int(m.group(1))
        else:
            curve.append((epoch if epoch >= 0 else len(curve), float(m.group(2))))
    return curve


def take_off(curve: List[Tuple[int, float]], level: float = 50.0) -> Optional[int]:
    """The first epoch (0-based) whose validation top-1 passes ``level``; None if none does."""
    return next((e for e, v in curve if v > level), None)


def curve_text(curve: List[Tuple[int, float]]) -> str:
    """Top-1 values; as ``epoch:top-1`` when the run was not validated after every epoch."""
    if [e for e, _ in curve] == list(range(len(curve))):
        return ' '.join(f'{v:.0f}' for _, v in curve)
    return ' '.join(f'{e}:{v:.0f}' for e, v in curve)


def mean_std(values: List[float]) -> str:
    if not values:
        return '—'
    if len(values) == 1:
        return f'{values[0]:.2f} (one seed)'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out')
    parser.add_argument('configs', nargs='*', help="configurations (default with --decisive: Table 1's 9)")
    parser.add_argument('--no_profile', action='store_true', help='skip the GMACs / memory columns')
    parser.add_argument('--brief', action='store_true', help='only a short table of the runs and where they are')
    parser.add_argument('--warm', default=None, help="the configuration the others started from (WARM)")
    parser.add_argument('--decisive', action='store_true', help="the decisive study's table (seeds, took off, "
                        "top-1, paper, GMACs, s/epoch)")
    parser.add_argument('--took_off', type=float, default=50.0, help="--decisive: the validation top-1 (%%) a "
                        "seed must pass at some epoch to count as taken off")
    parser.add_argument('--time_seeds', type=int, nargs='+', default=None, help="--decisive: the seeds whose "
                        "wall times give s/epoch (those run on an otherwise idle machine; default: all)")
    args = parser.parse_args(argv)
    if not args.configs and not args.decisive:
        parser.error('name at least one configuration (or --decisive for the 9 of Table 1)')
    if args.decisive:
        configs = [c for c in args.configs if c != args.warm] or list(TABLE1)  # the starting point is no row
        table = decisive(args.out, configs, args.no_profile, args.took_off, args.time_seeds, args.warm)
        print(table)
        return table
    if args.brief:
        table = brief(args.out, args.configs, args.no_profile, args.warm)
        print(table)
        return table
    lines = ['| model | seeds | top-1 (%) | per seed | paper top-1 | GMACs/video (224 px) | activation MB/video | '
             's/epoch |', '|---|---|---|---|---|---|---|---|']
    curves = ['| run | epoch top-1 first passes 50% | validation top-1 by epoch |', '|---|---|---|']
    points = []
    for config in args.configs:
        runs = runs_of(args.out, config)
        prof = {} if args.no_profile else profile(config)
        gmacs, mem = prof.get('gmacs_per_video'), prof.get('activation_mb_per_video')
        per_epoch = statistics.mean(r['wall'] / r['epochs'] for r in runs) if runs else None
        seeds = ', '.join(f"{r['top1']:.2f}" for r in runs) or '—'
        lines.append(f"| {config} | {len(runs)} | {mean_std([r['top1'] for r in runs])} | {seeds} | "
                     f"{PAPER.get(config, '—')} | "
                     f"{f'{gmacs:.2f}' if gmacs else '—'} | {f'{mem:.0f}' if mem else '—'} | "
                     f"{f'{per_epoch:.0f}' if per_epoch else '—'} |")
        for r in runs:
            epoch = take_off(r['curve'])
            curves.append(f"| {config}_s{r['seed']} | {'never' if epoch is None else epoch} | "
                          f"{curve_text(r['curve'])} |")
        for name, curve in unfinished_of(args.out, config, runs).items():
            epoch = take_off(curve)
            curves.append(f"| {name} (unfinished, not in the table) | {'never' if epoch is None else epoch} | "
                          f"{curve_text(curve)} |")
        if runs and gmacs:
            points.append((config, gmacs, [r['top1'] for r in runs]))
    table = '\n'.join(lines) + '\n\n' + '\n'.join(curves)
    if points:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for config, gmacs, top1s in points:  # configurations of equal cost share an x: a legend names them
            line = ax.plot(gmacs, statistics.mean(top1s), 'o', label=config)[0]
            ax.plot([gmacs] * len(top1s), top1s, 'x', color=line.get_color(), alpha=0.7)  # each seed
        ax.legend(fontsize=8, loc='center right')
        ax.set_xlabel('GMACs per video (ResNet-18, 224 px, 32 frames)')
        ax.set_ylabel('top-1 (%)')
        ax.set_title('Move4MNIST study: accuracy against cost (dot: mean, x: seeds)')
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, 'top1_vs_gmacs.png'), dpi=120)
        plt.close(fig)
    print(table)
    return table


if __name__ == '__main__':
    main()
