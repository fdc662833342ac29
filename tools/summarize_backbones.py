"""Summarise scripts/repro_backbones_cpu.sh: one row per clip-backbone configuration, as a markdown table.

``python tools/summarize_backbones.py OUT --config NAME "MODEL FLAGS" [--config ...] [--no_profile]`` reads each
run ``OUT/log/NAME`` as tools/summarize_study.py does (``eval.txt``: the best checkpoint's ``Testing Results``;
``done``: wall seconds; ``args.txt``: epochs; ``log.csv``: validation top-1 by epoch) and counts GMACs per video
with tools/profile_model.py at the inputs trained on and at the backbone's standard input (``STANDARD``: the
clip its published figures use; rows with their own frame count or clustering keep their frames at the
standard crop). Prints the table, then each run's validation top-1 by epoch.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

from tools.summarize_study import RESULT, curve_text, take_off, validation_curve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# arch -> (frames, crop) of the clip its published cost is given for: tools/published_costs.py (torchvision's
# table, C3D, mmaction2's I3D at 256), and pytorchvideo's X3D (test crops) and SlowFast 8x8 (32 Fast frames at 256)
# as archs/x3d.py and archs/slowfast.py compare them
STANDARD: Dict[str, Tuple[int, int]] = {
    'r3d_18': (16, 112), 'mc3_18': (16, 112), 'r2plus1d_18': (16, 112), 's3d': (16, 224), 'c3d': (16, 112),
    'i3d_resnet50': (32, 256), 'x3d_xs': (4, 182), 'x3d_s': (13, 182), 'x3d_m': (16, 256), 'x3d_l': (16, 356),
    'slowfast_r50': (32, 256)}
TOOK_OFF = 50.0  # validation top-1 (%) a run has to pass at some epoch to count as having learnt


def flag_value(flags: List[str], name: str) -> Optional[str]:
    """The value after ``name`` in a flag list, or None."""
    return flags[flags.index(name) + 1] if name in flags else None


def with_flag(flags: List[str], name: str, value: str) -> List[str]:
    """``flags`` with ``name`` set to ``value`` (replaced where present, else appended)."""
    if name in flags:
        i = flags.index(name)
        return flags[:i + 1] + [value] + flags[i + 2:]
    return flags + [name, value]


def without_flag(flags: List[str], name: str) -> List[str]:
    """``flags`` without ``name`` and its value."""
    if name not in flags:
        return flags
    i = flags.index(name)
    return flags[:i] + flags[i + 2:]


def standard_flags(flags: List[str], plain: bool) -> Optional[List[str]]:
    """The flags of the backbone's standard input: the standard clip for a ``plain`` row (a name without -T or
    -cumG), else the row's own frames at the standard crop; None for an arch without a standard here. The
    stride between frames (--sample_rate) changes no count and is dropped."""
    arch = flag_value(flags, '--arch')
    if arch not in STANDARD:
        return None
    frames, size = STANDARD[arch]
    out = with_flag(with_flag(without_flag(flags, '--sample_rate'), '--img_size', str(size)), '--scale_size',
                    str(size))
    return with_flag(out, '--num_segments', str(frames)) if plain else out


def input_text(flags: List[str]) -> str:
    """T x S^2 of a configuration, with the clustering when there is one (e.g. ``32->8 cum. x 32^2``)."""
    size = flag_value(flags, '--img_size')
    cluster = flag_value(flags, '--cluster')
    if cluster and cluster != 'none':
        return f"{flag_value(flags, '--frames')}->{flag_value(flags, '--num_segments')} {cluster} x {size}²"
    rate = flag_value(flags, '--sample_rate')
    return f"{flag_value(flags, '--num_segments')}x{size}²" + (f" (stride {rate})" if rate else '')


def gmacs(flags: List[str]) -> Optional[float]:
    """GMACs per video from tools/profile_model.py --json (on the meta device unless the model clusters)."""
    cluster = flag_value(flags, '--cluster')
    meta = [] if cluster and cluster != 'none' else ['--meta']  # the clustering reads real activations
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'profile_model.py'), 'move4mnist', 'RGB', *flags,
           '--pretrain', 'scratch', '--device', 'cpu', '--no_cuda_step', '--json', *meta]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"tools/profile_model.py failed for {shlex.join(flags)}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])['gmacs_per_video']


def gmacs_text(value: float) -> str:
    """GMACs with two decimals, or three significant digits below 1 (X3D-XS at 32 px is 0.0529)."""
    return f'{value:.2f}' if value >= 1 else f'{value:.3g}'


def read_run(folder: str) -> Optional[Dict[str, object]]:
    """A finished run's top-1, wall seconds, epochs and validation curve; None if it has not finished."""
    try:
        top1 = float(RESULT.search(open(os.path.join(folder, 'eval.txt')).read()).group(1))
        wall = float(open(os.path.join(folder, 'done')).read())
        epochs = json.load(open(os.path.join(folder, 'args.txt')))['epochs']
    except (OSError, AttributeError, ValueError, KeyError):
        return None
    return {'top1': top1, 'wall': wall, 'epochs': epochs, 'curve': validation_curve(os.path.join(folder, 'log.csv'))}


def summarize(out: str, configs: List[Tuple[str, str]], no_profile: bool = False) -> str:
    """The markdown table of ``configs`` ((name, model flags) pairs) and their validation curves."""
    lines = ['| configuration | input (frames x crop) | top-1 % (best, re-evaluated) | took off (> 50%) | '
             'GMACs/video as trained | GMACs/video at the standard input | s/epoch |',
             '|---|---|---|---|---|---|---|']
    curves = ['| run | validation top-1 by epoch |', '|---|---|']
    for name, flag_text in configs:
        flags = shlex.split(flag_text)
        run = read_run(os.path.join(out, 'log', name))
        curve = run['curve'] if run else validation_curve(os.path.join(out, 'log', name, 'log.csv'))
        epoch = take_off(curve, TOOK_OFF)
        took = '—' if not curve else ('never' if epoch is None else f'yes, epoch {epoch}')
        top1 = f"{run['top1']:.1f}" if run else 'not finished'
        per_epoch = f"{run['wall'] / run['epochs']:.0f}" if run else '—'
        used = standard = '—'
        if not no_profile:
            used = gmacs_text(gmacs(flags))
            std = standard_flags(flags, plain='-' not in name)
            if std is not None:
                standard = f'{gmacs_text(gmacs(std))} ({input_text(std)})'
        lines.append(f'| {name} | {input_text(flags)} | {top1} | {took} | {used} | {standard} | {per_epoch} |')
        if curve:
            curves.append(f"| {name}{'' if run else ' (unfinished)'} | {curve_text(curve)} |")
    return '\n'.join(lines) + '\n\n' + '\n'.join(curves)


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out')
    parser.add_argument('--config', nargs=2, action='append', required=True, metavar=('NAME', 'FLAGS'),
                        help="a run name and its model flags (scripts/repro_backbones_cpu.sh's flags NAME)")
    parser.add_argument('--no_profile', action='store_true', help='skip the GMACs columns')
    args = parser.parse_args(argv)
    table = summarize(args.out, [tuple(c) for c in args.config], args.no_profile)
    print(table)
    return table


if __name__ == '__main__':
    main()
