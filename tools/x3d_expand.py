"""X3D's progressive expansion (Feichtenhofer, CVPR 2020, Sec. 3-4) at toy scale.

Start from a tiny X2D (one frame, small, narrow, shallow: ``--arch x2d`` with backbone options). At each step,
expand each of the six axes alone so that the clip's multiply-adds about double, train each candidate briefly,
keep the one with the best validation top-1 and go on from it:

* ``frames`` (gamma_t, temporal duration): twice the frames at the same sample stride (a longer span);
* ``rate`` (gamma_tau, frame rate): twice the frames at half the stride (the same span; needs an even stride);
  the paper's X-Temporal takes a longer clip at a higher rate at once (its X3D-S: 13 frames at stride 6, where
  X3D-XS has 4 at 12); here the two are separate axes, so that combination takes a ``frames`` and a ``rate`` step;
* ``size`` (gamma_s), ``width`` (gamma_w), ``bottleneck`` (gamma_b), ``depth`` (gamma_d): the value whose
  measured GMACs (torch's FLOP counter on the meta device, ``tools/profile_model.count_macs``) are nearest twice
  the current ones, found on a grid (sizes in pixels; factors in steps of 1/16 of the current one).

Each candidate trains through main.py's own pieces (``builder``, ``main.fit``: ``ops/train_step.py``'s step,
its log.csv and TensorBoard under ``OUT/log/<candidate>``), with the same seed. Writes ``OUT/path.json`` (every
candidate, the chosen path) and ``OUT/expansion.png`` (top-1 against multiply-adds: candidates as points, the
path as a line), and prints the path::

    python tools/x3d_expand.py move4mnist --root_path DATA --steps 3 --epochs 2 --out /tmp/x3d_expand

The JSON's ``gmacs`` are multiply-adds per clip (the X3D paper's "FLOPs"); the table and plot give MMACs. The
search is greedy as the paper's, on the validation split (the paper searches on a held-out part of the training
set). Deterministic for ``--seed`` (one thread: ``OMP_NUM_THREADS=1``).
"""
import argparse
import dataclasses
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

import builder
import main as train_main
import opts
from ops import distributed as dist_utils
from ops.runtime import set_seed
from tools.profile_model import count_macs

AXES = ('frames', 'rate', 'size', 'width', 'bottleneck', 'depth')


@dataclasses.dataclass(frozen=True)
class Config:
    """One point of the search: the clip (frames, stride, size) and the network's expansion factors."""
    frames: int
    stride: int
    size: int
    width: float
    bottleneck: float
    depth: float
    head: int = 2048

    def options(self) -> Dict[str, float]:
        """``x2d``'s backbone options."""
        return {'width': self.width, 'bottleneck': self.bottleneck, 'depth': self.depth, 'head_width': self.head}


def train_argv(config: Config, dataset: str, root: str, out: str, name: str, epochs: int, batch: int, lr: float,
               optimizer: str, seed: int) -> List[str]:
    """main.py's flags for training ``config`` (its network options go in ``args.backbone_options``)."""
    return [dataset, 'RGB', '--root_path', root, '--arch', 'x2d', '--pretrain', 'scratch', '--npb',
            '--num_segments', str(config.frames), '--sample_rate', str(config.stride),
            '--img_size', str(config.size), '--scale_size', str(config.size), '-b', str(batch), '-j', '0',
            '--epochs', str(epochs), '--lr', str(lr), '--lr_type', 'cos', '--optimizer', optimizer,
            '--device', 'cpu', '--seed', str(seed), '--eval-freq', '1', '--print-freq', '1000000',
            '--root_log', os.path.join(out, 'log'), '--root_model', os.path.join(out, 'ckpt'), '--store_name', name]


def parse_train_args(argv: Sequence[str], config: Config) -> argparse.Namespace:
    """main.py's namespace for ``argv``, with the network's expansion factors as backbone options."""
    args = opts.parse_args(list(argv))
    args.backbone_options = config.options()
    return args


def gmacs(config: Config, num_class: int) -> float:
    """Multiply-adds (G) of one clip through the TSN that trains ``config`` (counted on the meta device)."""
    args = parse_train_args(train_argv(config, 'move4mnist', '', '', 'count', 1, 1, 0.1, 'sgd', 0), config)
    with torch.device('meta'):
        model = builder.build_model(args, num_class, print_spec=False, pretrain='scratch')
        x = torch.empty(1, 3 * config.frames, config.size, config.size)
    macs, _ = count_macs(model.eval(), x)
    return macs / 1e9


def nearest(configs: Sequence[Config], target: float, num_class: int) -> Tuple[Config, float]:
    """Of ``configs``, whose GMACs do not decrease along the list, the one nearest ``target`` (in ratio) and its
    GMACs; found by bisection (a few counts, not one per config)."""
    lo, hi = 0, len(configs) - 1
    while lo < hi:  # the first config reaching the target (the last if none does)
        mid = (lo + hi) // 2
        if gmacs(configs[mid], num_class) >= target:
            hi = mid
        else:
            lo = mid + 1
    pairs = [(c, gmacs(c, num_class)) for c in configs[max(lo - 1, 0):lo + 1]]
    return min(pairs, key=lambda p: abs(math.log(p[1] / target)))


def candidates(config: Config, num_class: int, factor: float = 2.0) -> Dict[str, Tuple[Config, float]]:
    """Each axis's expansion of ``config`` whose GMACs are nearest ``factor`` x its own: {axis: (config, GMACs)}.

    ``rate`` is left out at an odd stride (halving it would not keep the span: 3 -> 1 triples the frames). Sizes are searched up to 3x the side,
    factors up to 8x (few blocks are added where the clip is already small in space).
    """
    target = factor * gmacs(config, num_class)
    out = {'frames': dataclasses.replace(config, frames=config.frames * 2)}
    if config.stride % 2 == 0:
        out['rate'] = dataclasses.replace(config, frames=config.frames * 2, stride=config.stride // 2)
    result = {axis: (c, gmacs(c, num_class)) for axis, c in out.items()}
    sizes = range(config.size + 1, 3 * config.size)
    result['size'] = nearest([dataclasses.replace(config, size=s) for s in sizes], target, num_class)
    grid = [1 + k / 16 for k in range(1, 113)]
    for axis in ('width', 'bottleneck', 'depth'):
        configs = [dataclasses.replace(config, **{axis: round(getattr(config, axis) * f, 4)}) for f in grid]
        result[axis] = nearest(configs, target, num_class)
    return {axis: result[axis] for axis in AXES if axis in result}


def train(config: Config, argv: List[str], seed: int) -> Dict[str, float]:
    """Train ``config`` as main.py would (``main.fit``: log.csv, TensorBoard, checkpoints); the last validation."""
    args = parse_train_args(argv, config)
    opts.check_training(args)
    set_seed(args.seed)
    device = torch.device('cpu')
    data = builder.dataset_config(args)
    model = builder.build_model(args, data.num_class, print_spec=False).to(device)
    optimizer = builder.build_optimizer(args, model)
    run = train_main.Run(args, 0, 1, device, data, model, optimizer, torch.amp.GradScaler('cpu', enabled=False),
                         os.path.join(args.root_log, args.store_name), os.path.join(args.root_model, args.store_name))
    os.makedirs(run.log_dir, exist_ok=True)
    os.makedirs(run.model_dir, exist_ok=True)
    val_set = builder.build_dataset(args, data, model, train=False)
    val_loader = builder.make_loader(val_set, args, dist_utils.EpochSampler(len(val_set), False, seed, 0, 1, pad=False),
                                     model.sample_len, seed)
    return train_main.fit(run, model, val_loader, 0, 0, 0.0, argv)


def describe(config: Config) -> str:
    """A configuration in one line: frames T, stride tau, size S, width, bottleneck and depth factors, head."""
    return (f"T={config.frames} tau={config.stride} S={config.size} w={config.width:g} b={config.bottleneck:g} "
            f"d={config.depth:g} head={config.head}")


def search(base: Config, dataset: str, root: str, out: str, steps: int, epochs: int, batch: int, lr: float,
           optimizer: str, seed: int, num_class: int) -> Dict:
    """The greedy expansion: ``steps`` steps from ``base``; returns {'path': [...], 'candidates': [...]}."""
    def fit(config: Config, name: str, g: float, step: int, axis: str) -> Dict:
        argv = train_argv(config, dataset, root, out, name, epochs, batch, lr, optimizer, seed)
        t0 = time.time()
        result = train(config, argv, seed)
        return {'step': step, 'axis': axis, 'name': name, 'gmacs': g, 'top1': result['top1'],
                'loss': result['loss'], 'seconds': round(time.time() - t0, 1), 'config': dataclasses.asdict(config)}

    current = fit(base, 'step0_base', gmacs(base, num_class), 0, 'base')
    path, tried = [current], [current]
    bar = tqdm(total=steps * len(AXES), desc='candidates', dynamic_ncols=True)
    config = base
    for step in range(1, steps + 1):
        round_ = []
        for axis, (cand, g) in candidates(config, num_class).items():
            round_.append(fit(cand, f'step{step}_{axis}', g, step, axis))
            bar.update(1)
            bar.set_postfix(step=step, axis=axis, top1=f"{round_[-1]['top1']:.1f}")
        tried += round_
        best = max(round_, key=lambda r: (r['top1'], -r['gmacs']))  # ties: the cheaper
        path.append(best)
        config = Config(**best['config'])
    bar.close()
    return {'path': path, 'candidates': tried}


def plot(result: Dict, png: str) -> None:
    """Top-1 against MMACs (log scale): every candidate as a point named by its axis, the path as a line."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = dict(zip(('base',) + AXES, plt.rcParams['axes.prop_cycle'].by_key()['color']))
    for axis in colours:
        pts = [r for r in result['candidates'] if r['axis'] == axis]
        if pts:
            ax.scatter([r['gmacs'] * 1e3 for r in pts], [r['top1'] for r in pts], color=colours[axis], label=axis, s=24)
    path = result['path']
    ax.plot([r['gmacs'] * 1e3 for r in path], [r['top1'] for r in path], 'k-', lw=1.2, label='chosen path')
    for r in path[1:]:
        ax.annotate(r['axis'], (r['gmacs'] * 1e3, r['top1']), textcoords='offset points', xytext=(4, 4), fontsize=8)
    ax.set_xscale('log')
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel('MMACs per clip (multiply-adds)')
    ax.set_ylabel('validation top-1 (%)')
    ax.set_title("X3D's expansion from a tiny X2D")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def table(path: List[Dict]) -> str:
    """The path as a markdown table."""
    lines = ['| step | axis | clip and network | MMACs | top-1 |', '|---|---|---|---|---|']
    for r in path:
        lines.append(f"| {r['step']} | {r['axis']} | {describe(Config(**r['config']))} | {r['gmacs'] * 1e3:.3f} | "
                     f"{r['top1']:.2f} |")
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The tool's flags: the data, the starting X2D, the search (steps, epochs) and main.py's training recipe."""
    p = argparse.ArgumentParser(description="X3D's greedy expansion search from a tiny X2D (top-1 against GMACs)")
    p.add_argument('dataset', help="main.py's data set name (e.g. move4mnist)")
    p.add_argument('--root_path', required=True, help='the data set root')
    p.add_argument('--out', required=True, help='folder for path.json, expansion.png, logs and checkpoints')
    p.add_argument('--steps', type=int, default=3, help='expansion steps (each trains one candidate per axis)')
    p.add_argument('--epochs', type=int, default=1, help='training epochs per candidate')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('-b', '--batch_size', type=int, default=16)
    p.add_argument('--lr', type=float, default=0.002)
    p.add_argument('--optimizer', default='adamw', choices=['sgd', 'adamw'])
    g = p.add_argument_group('the base X2D')
    g.add_argument('--frames', type=int, default=1, help='clip frames T')
    g.add_argument('--stride', type=int, default=8,
                   help='sample stride tau (frames between sampled frames); a power of 2 keeps the rate axis to 1')
    g.add_argument('--size', type=int, default=32, help='crop side S in pixels')
    g.add_argument('--width', type=float, default=0.5, help='gamma_w (stem round_width(12 gamma_w))')
    g.add_argument('--bottleneck', type=float, default=1.0, help='gamma_b (block inner width / output width)')
    g.add_argument('--depth', type=float, default=0.5, help='gamma_d (blocks ceil(gamma_d (1, 2, 5, 3)))')
    g.add_argument('--head_width', type=int, default=128,
                   help="the head's projection before the classifier (X3D's 2048 would be most of a toy X2D's "
                        "multiply-adds, and it does not grow with the clip)")
    return p


def main(argv: Optional[List[str]] = None) -> Dict:
    """Run the search; returns what ``OUT/path.json`` holds (every candidate and the chosen path)."""
    args = build_parser().parse_args(argv)
    base = Config(args.frames, args.stride, args.size, args.width, args.bottleneck, args.depth, args.head_width)
    os.makedirs(args.out, exist_ok=True)
    num_class = builder.dataset_config(opts.parse_args([args.dataset, 'RGB', '--root_path', args.root_path])
                                       ).num_class
    t0 = time.time()
    result = search(base, args.dataset, args.root_path, args.out, args.steps, args.epochs, args.batch_size, args.lr,
                    args.optimizer, args.seed, num_class)
    result['wall_s'] = round(time.time() - t0, 1)
    result['command'] = ' '.join(['python', 'tools/x3d_expand.py'] + list(sys.argv[1:] if argv is None else argv))
    with open(os.path.join(args.out, 'path.json'), 'w') as f:
        json.dump(result, f, indent=1)
    plot(result, os.path.join(args.out, 'expansion.png'))
    print(table(result['path']))
    print(f"wall time {result['wall_s']:.0f} s; {args.out}/path.json, {args.out}/expansion.png")
    return result


if __name__ == '__main__':
    main()
