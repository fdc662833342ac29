"""How much sooner a multigrid run reaches a normal run's top-1 (scripts/repro_multigrid_cpu.sh).

``python tools/multigrid_speedup.py NORMAL_LOG MULTIGRID_LOG`` reads each run's log folder (main.py's
``--root_log/<run name>``): the validation top-1 after each epoch (``log.csv``'s ``Testing Results`` lines; the runs
need ``--eval-freq 1``) and the seconds each epoch trained (the TensorBoard scalar ``time/epoch_s``: training only,
validation excluded, so both runs are timed alike). It prints both curves with their cumulative training seconds,
then the target (the normal run's last top-1), the seconds the multigrid run took to first reach it, and the
speed-up: the normal run's whole training time over that (Wu et al. 2020 compare whole schedules: 3-6x), and over
the normal run's own first arrival at the target. The same comparison follows in wall-clock seconds (training,
validation after every epoch and data loading: each validation's TensorBoard event time less the time the run's
event file was opened), since multigrid's many short epochs validate more often.
"""
import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from tools.summarize_study import validation_curve


def epoch_seconds(log_dir: str) -> Dict[int, float]:
    """epoch -> training seconds, from the run's TensorBoard events (the last value of each epoch)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(log_dir, size_guidance={'scalars': 0})
    events.Reload()
    if 'time/epoch_s' not in events.Tags().get('scalars', []):
        raise ValueError(f"{log_dir}: no TensorBoard scalar time/epoch_s (not a main.py log folder?)")
    return {e.step: e.value for e in events.Scalars('time/epoch_s')}


def timeline(log_dir: str) -> List[Tuple[int, float, float]]:
    """(epoch, cumulative training seconds at its end, validation top-1) of each validated epoch."""
    curve = validation_curve(os.path.join(log_dir, 'log.csv'))
    if not curve:
        raise ValueError(f"{log_dir}/log.csv: no validation results (train with --eval-freq 1)")
    seconds = epoch_seconds(log_dir)
    missing = [e for e, _ in curve if e not in seconds]
    if missing:
        raise ValueError(f"{log_dir}: epochs {missing} have a top-1 but no time/epoch_s")
    return [(e, sum(v for k, v in seconds.items() if k <= e), top1) for e, top1 in curve]


def wall_timeline(log_dir: str) -> List[Tuple[int, float, float]]:
    """(epoch, wall seconds from the run's start to the end of its validation, top-1) of each validated epoch: the
    TensorBoard events of ``acc/test_top1`` (main.py writes one after each validation) against the time the event
    file was opened (before the first epoch)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    files = sorted(f for f in os.listdir(log_dir) if f.startswith('events.out.tfevents.'))
    if len(files) > 1:  # each start of the run opens one: the time between them would count
        raise ValueError(f"{log_dir}: {len(files)} TensorBoard event files (a resumed or restarted run): its wall "
                         f"clock would include the time it was down; compare uninterrupted runs")
    events = EventAccumulator(log_dir, size_guidance={'scalars': 0})
    events.Reload()
    if 'acc/test_top1' not in events.Tags().get('scalars', []):
        raise ValueError(f"{log_dir}: no TensorBoard scalar acc/test_top1 (train with --eval-freq 1)")
    start = events.FirstEventTimestamp()
    return [(e.step, e.wall_time - start, e.value) for e in events.Scalars('acc/test_top1')]


def wall_report(normal: Sequence[Tuple[int, float, float]], multigrid: Sequence[Tuple[int, float, float]]) -> str:
    """The wall-clock comparison: the seconds each run took to first reach the normal run's final top-1 (or, when
    multigrid never does, the best top-1 both reach), and their ratio."""
    target = normal[-1][2]
    own, reached = first_reach(normal, target), first_reach(multigrid, target)
    lines = [f'wall clock (training, validation, loading): normal run {normal[-1][1]:.0f} s in all, '
             f'{target:.1f}% first at {own[1]:.0f} s; multigrid run {multigrid[-1][1]:.0f} s in all']
    if reached is not None:
        lines.append(f'multigrid reached {target:.1f}% at {reached[1]:.0f} s: {normal[-1][1] / reached[1]:.2f}x against '
                     f'the whole normal run, {own[1] / reached[1]:.2f}x against its first arrival')
        return '\n'.join(lines)
    best = max(t for _, _, t in multigrid)
    at_m, at_n = first_reach(multigrid, best), first_reach(normal, best)
    lines.append(f'multigrid never reached {target:.1f}%' + ('' if at_n is None else
                 f'; at {best:.1f}%, the best both reach: normal {at_n[1]:.0f} s, multigrid {at_m[1]:.0f} s: '
                 f'{at_n[1] / at_m[1]:.2f}x'))
    return '\n'.join(lines)


def first_reach(line: Sequence[Tuple[int, float, float]], target: float) -> Optional[Tuple[int, float]]:
    """(epoch, cumulative seconds) at which top-1 first reaches ``target``; None if never."""
    return next(((e, s) for e, s, top1 in line if top1 >= target), None)


def report(normal: Sequence[Tuple[int, float, float]], multigrid: Sequence[Tuple[int, float, float]]) -> str:
    """The two curves and the speed-up, as markdown."""
    rows = ['| epoch | normal: train s | normal: top-1 % | multigrid: train s | multigrid: top-1 % |',
            '|---|---|---|---|---|']
    by_epoch = {e: (s, t) for e, s, t in multigrid}
    for e in sorted({e for e, _, _ in normal} | set(by_epoch)):
        n = next(((s, t) for k, s, t in normal if k == e), None)
        m = by_epoch.get(e)
        cells = [f'{n[0]:.1f}', f'{n[1]:.1f}'] if n else ['', '']
        cells += [f'{m[0]:.1f}', f'{m[1]:.1f}'] if m else ['', '']
        rows.append(f'| {e} | ' + ' | '.join(cells) + ' |')
    target, whole = normal[-1][2], normal[-1][1]
    own = first_reach(normal, target)
    reached = first_reach(multigrid, target)
    rows.append('')
    rows.append(f'target: the normal run\'s final top-1 {target:.1f}% (after {whole:.0f} s of training; first reached '
                f'at epoch {own[0]}, {own[1]:.0f} s)')
    if reached is None:
        best = max(t for _, _, t in multigrid)
        rows.append(f'multigrid: never reached {target:.1f}% (best {best:.1f}% after {multigrid[-1][1]:.0f} s): '
                    f'no speed-up at the target')
        at_m, at_n = first_reach(multigrid, best), first_reach(normal, best)
        if at_n is not None:  # the highest top-1 both runs reach: the times to it, as a ratio
            rows.append(f'at the best top-1 both reach, {best:.1f}%: normal epoch {at_n[0]} ({at_n[1]:.0f} s), '
                        f'multigrid epoch {at_m[0]} ({at_m[1]:.0f} s): {at_n[1] / at_m[1]:.2f}x')
    else:
        rows.append(f'multigrid: reached it at epoch {reached[0]}, after {reached[1]:.0f} s of training')
        rows.append(f'speed-up: {whole / reached[1]:.2f}x against the whole normal run, {own[1] / reached[1]:.2f}x '
                    f'against its first arrival')
    return '\n'.join(rows)


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('normal', help="the normal run's log folder (--root_log/<run name>)")
    parser.add_argument('multigrid', help="the multigrid run's log folder")
    args = parser.parse_args(argv)
    text = report(timeline(args.normal), timeline(args.multigrid))
    try:
        text += '\n\n' + wall_report(wall_timeline(args.normal), wall_timeline(args.multigrid))
    except ValueError as err:  # the training-seconds comparison stands; the wall clock is not given
        text += f'\n\nwall clock: not compared ({err})'
    print(text)
    return text


if __name__ == '__main__':
    try:
        main()
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(1)
