"""tools/multigrid_speedup.py: the time a multigrid run takes to reach a normal run's top-1, from main.py's logs;
and scripts/repro_multigrid_cpu.sh, which makes both runs and the report, on a miniature set."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

from tools.multigrid_speedup import main, report, timeline, wall_report, wall_timeline

ROOT = Path(__file__).resolve().parent.parent


def test_report_finds_the_first_epoch_at_the_target():
    normal = [(0, 10.0, 50.0), (1, 20.0, 90.0), (2, 30.0, 90.0)]
    multigrid = [(0, 4.0, 60.0), (1, 8.0, 91.0), (2, 12.0, 95.0)]
    text = report(normal, multigrid)
    assert "target: the normal run's final top-1 90.0% (after 30 s of training; first reached at epoch 1, 20 s)" in text
    assert 'reached it at epoch 1, after 8 s of training' in text
    assert 'speed-up: 3.75x against the whole normal run, 2.50x against its first arrival' in text
    short = report(normal, [(0, 4.0, 60.0), (1, 16.0, 85.0), (2, 24.0, 80.0)])
    assert 'never reached 90.0% (best 85.0% after 24 s)' in short
    assert 'at the best top-1 both reach, 85.0%: normal epoch 1 (20 s), multigrid epoch 1 (16 s): 1.25x' in short


def write_run(folder: Path, seconds, top1, validation_s: float = 2.0) -> None:
    """A main.py log folder: each epoch trains ``seconds[e]`` and validates ``validation_s`` (the event times)."""
    import time
    folder.mkdir(parents=True)
    lines = []
    writer = SummaryWriter(log_dir=str(folder))
    start = time.time()
    writer.add_scalar('lr', 0.0, 0, walltime=start)  # opens the event file now, as main.py's first write
    clock = start
    for epoch, (s, t) in enumerate(zip(seconds, top1)):
        lines += [f'Epoch: [{epoch}][0/4], lr: 0.001', f'Testing Results: Prec@1 {t:.3f} Prec@5 100.000 Loss 1.0']
        clock += s + validation_s
        writer.add_scalar('time/epoch_s', s, epoch, walltime=clock)
        writer.add_scalar('acc/test_top1', t, epoch, walltime=clock)
    writer.close()
    (folder / 'log.csv').write_text('\n'.join(lines) + '\n')


def test_timeline_and_main_read_main_py_logs(tmp_path):
    write_run(tmp_path / 'normal', [10, 10, 10], [40, 70, 80])
    write_run(tmp_path / 'mg', [3, 3, 5, 10], [30, 60, 80, 85])
    assert timeline(str(tmp_path / 'normal')) == [(0, 10, 40), (1, 20, 70), (2, 30, 80)]
    text = main([str(tmp_path / 'normal'), str(tmp_path / 'mg')])
    assert '| 3 |  |  | 21.0 | 85.0 |' in text and 'reached it at epoch 2, after 11 s' in text
    assert 'speed-up: 2.73x' in text
    # wall clock: each epoch's training plus its 2 s of validation (the normal run: 12, 24, 36 s)
    walls = wall_timeline(str(tmp_path / 'normal'))
    assert [e for e, _, _ in walls] == [0, 1, 2] and [t for _, _, t in walls] == [40, 70, 80]
    assert [w for _, w, _ in walls] == pytest.approx([12, 24, 36], abs=0.5)
    assert 'multigrid reached 80.0% at 17 s: 2.12x against the whole normal run' in text  # mg: 5, 10, 17, 29 s
    write_run(tmp_path / 'resumed', [3, 3], [30, 60])
    SummaryWriter(log_dir=str(tmp_path / 'resumed'), filename_suffix='.second').close()  # a second start
    with pytest.raises(ValueError, match='2 TensorBoard event files'):
        wall_timeline(str(tmp_path / 'resumed'))
    assert 'wall clock: not compared' in main([str(tmp_path / 'normal'), str(tmp_path / 'resumed')])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no validation results'):
        timeline(str(tmp_path / 'empty'))


def test_wall_report_at_the_best_both_reach_when_multigrid_falls_short():
    text = wall_report([(0, 12.0, 80.0), (1, 24.0, 95.0)], [(0, 5.0, 60.0), (1, 10.0, 80.0), (2, 30.0, 90.0)])
    assert 'normal run 24 s in all, 95.0% first at 24 s; multigrid run 30 s in all' in text
    assert 'never reached 95.0%; at 90.0%, the best both reach: normal 24 s, multigrid 30 s: 0.80x' in text


def test_repro_script_trains_both_runs_and_reports_the_ratio(tmp_path):
    """scripts/repro_multigrid_cpu.sh on 8 videos: the TSM-2 warm start, TSM-8 normally for 2 epochs and with
    --multigrid long,short (sub-batch BatchNorm: MG_BN=sub) for 3 from the same checkpoint, the report; a second
    call skips every run."""
    out = tmp_path / 'mg'
    env = {**os.environ, 'OUT': str(out), 'EPOCHS': '2', 'WARM_EPOCHS': '1', 'NTRAIN': '8', 'NVAL': '4',
           'EXTRA': '--device cpu', 'OMP_NUM_THREADS': '1', 'THREADS': '1', 'WARM_THREADS': '1', 'MG_BN': 'sub',
           'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
    for call in range(2):
        proc = subprocess.run(['bash', 'scripts/repro_multigrid_cpu.sh'], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert 'normal: done earlier' in proc.stdout and 'multigrid: done earlier' in proc.stdout
    command = [line for line in (out / 'multigrid' / 'log' / 'tsm8_s0' / 'log.csv').read_text().splitlines()
               if line.startswith('main.py ')][0]
    warm = out / 'normal' / 'checkpoint' / 'tsm2_s0' / 'ckpt.best.pth.tar'
    assert f'--multigrid long,short --multigrid_lr linear --multigrid_bn sub --tune_from {warm}' in command
    assert '--epochs 3 ' in command and '--multigrid_bn' not in (out / 'normal' / 'log' / 'tsm8_s0' / 'log.csv').read_text()
    results = (out / 'results.md').read_text()
    assert "target: the normal run's final top-1" in results and '| 2 |  |  |' in results
    assert 'epochs 2-2: batch 16, 8 frames, 32px, lr x1, short cycle 64x16px 32x23px 16x32px' in results
