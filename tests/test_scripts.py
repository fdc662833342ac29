"""scripts/repro_move4mnist_cpu.sh on a miniature study: it trains, evaluates, summarises, and skips finished
runs when it is started again (its resume contract)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run_study(out: Path, expect: int = 0, **settings: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OUT': str(out), 'SEEDS': '0', 'CONFIGS': 'tsm8 cumulative8', 'EPOCHS': '1', 'SIZE': '32',
           'NTRAIN': '8', 'NVAL': '4', 'WORKERS': '0', 'EXTRA': '--device cpu', 'OMP_NUM_THREADS': '2',
           'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''), **settings}
    proc = subprocess.run(['bash', 'scripts/repro_move4mnist_cpu.sh'], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == expect, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_study_script_trains_summarises_and_skips_finished_runs(tmp_path):
    out = tmp_path / 'study'
    wide = {'WIDE': 'cumulative8', 'WIDE_WORKERS': '1'}  # alone on all the cores, with a loader worker
    first = run_study(out, **wide)  # two runs at once (the default PARALLEL=2): the longer configuration starts first
    assert 'runs: cumulative8_s0 tsm8_s0 (PARALLEL=2' in first.stdout
    commands = {name: (out / 'log' / name / 'log.csv').read_text().splitlines()[0] for name in
                ('cumulative8_s0', 'tsm8_s0')}
    assert ' -j 1 ' in commands['cumulative8_s0'] and ' -j 0 ' in commands['tsm8_s0']
    assert 'WIDE=cumulative8 WIDE_WORKERS=1' in (out / 'settings.txt').read_text()
    assert 'tsm8_s0: Testing Results: Prec@1' in first.stdout and 'cumulative8_s0: Testing Results' in first.stdout
    table = (out / 'results.md').read_text()
    rows = {line.split('|')[1].strip(): line for line in table.splitlines() if line.startswith('| ')}
    assert '| 1 |' in rows['tsm8'] and '14.51' in rows['tsm8']  # one seed; Table 1's TSM-8 cost (14.56 G)
    assert '| 1 |' in rows['cumulative8'] and '28.44' in rows['cumulative8']
    assert 'cumulative8_s0' in rows and (out / 'top1_vs_gmacs.png').stat().st_size > 0
    stamp = (out / 'checkpoint' / 'tsm8_s0' / 'ckpt.pth.tar').stat().st_mtime_ns
    (out / 'log' / 'cumulative8_s0' / 'done').unlink()  # as if killed before its evaluation: it is finished again
    second = run_study(out, PARALLEL='1', **wide)  # one at a time: seed by seed, in the order given
    assert 'runs: tsm8_s0 cumulative8_s0 (PARALLEL=1' in second.stdout
    before_table = second.stdout.split('| model')[0]
    assert 'tsm8_s0: Testing Results' not in before_table  # a finished run is not trained again
    assert 'cumulative8_s0: Testing Results' in before_table
    assert (out / 'checkpoint' / 'tsm8_s0' / 'ckpt.pth.tar').stat().st_mtime_ns == stamp
    resumed = (out / 'log' / 'cumulative8_s0' / 'log.csv').read_text().splitlines()
    resumed = [line for line in resumed if line.startswith('main.py ')][-1]
    assert '--resume' in resumed and ' -j 1 ' in resumed  # WIDE gets its loader workers with PARALLEL=1 too


def test_parallel_runs_finish_and_a_misspelt_configuration_stops_first(tmp_path):
    bad = run_study(tmp_path / 'bad', expect=2, CONFIGS='tsm8 cumulatve8')
    assert 'unknown configuration cumulatve8' in bad.stderr and not (tmp_path / 'bad' / 'data').exists()
    out = tmp_path / 'par'
    proc = run_study(out, PARALLEL='2', SEEDS='0 1', CONFIGS='tsm8', SUMMARY_FLAGS='--no_profile', SCORES='cpu')
    assert 'runs: tsm8_s0 tsm8_s1 (PARALLEL=2, 2 threads each' in proc.stdout  # OMP_NUM_THREADS=2 is kept
    assert proc.stdout.count('Testing Results: Prec@1') >= 2
    # SCORES: each run stored its per-video scores, as main.py's evaluation counted them
    for seed in (0, 1):
        dump = np.load(out / 'log' / f'tsm8_s{seed}' / 'val_scores.npz')
        top1 = 100.0 * float((dump['scores'].argmax(1) == dump['labels']).mean())
        eval_line = (out / 'log' / f'tsm8_s{seed}' / 'eval.txt').read_text()
        assert len(dump['labels']) == 4 and f'Prec@1 {top1:.3f}' in eval_line, eval_line
    rows = {line.split('|')[1].strip(): line for line in (out / 'results.md').read_text().splitlines()
            if line.startswith('| ')}
    assert '| 2 |' in rows['tsm8'] and 'tsm8_s0' in rows and 'tsm8_s1' in rows


def test_a_failed_parallel_run_fails_the_study_and_other_settings_are_refused(tmp_path):
    out = tmp_path / 'study'
    bad_flag = {'EXTRA': '--device cpu --no_such_flag', 'SUMMARY_FLAGS': '--no_profile'}
    failed = run_study(out, expect=1, PARALLEL='2', CONFIGS='tsm8', SEEDS='0 1', WIDE='tsm8', **bad_flag)
    assert 'alone on' in failed.stdout  # WIDE runs one at a time; their failures count as well
    assert 'tsm8_s0: training failed' in failed.stdout and 'tsm8_s1: training failed' in failed.stdout
    assert not (out / 'log' / 'tsm8_s0' / 'done').exists()
    other = run_study(out, expect=2, EPOCHS='2', **bad_flag)  # the folder's runs were made with EPOCHS=1
    assert 'settings.txt' in other.stderr and 'EPOCHS=1' in other.stderr and 'choose another OUT' in other.stderr


def test_quickstart_warm_starts_both_models_and_ends_with_the_short_table(tmp_path):
    """scripts/quickstart.sh: TSM-2 first, ours-cumulative-8 and TSM-8 fine-tuned from its best checkpoint, each
    evaluated from disk, then the short table with the clustering model's top-1 and where the runs are."""
    out = tmp_path / 'quick'
    env = {**os.environ, 'OUT': str(out), 'EPOCHS': '1', 'WARM_EPOCHS': '2', 'NTRAIN': '8', 'NVAL': '4',
           'EXTRA': '--device cpu', 'SUMMARY_FLAGS': '--brief --no_profile',
           'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
    proc = subprocess.run(['bash', 'scripts/quickstart.sh'], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    commands = {name: [line for line in (out / 'log' / name / 'log.csv').read_text().splitlines()
                       if line.startswith('main.py ')][0] for name in ('tsm2_s0', 'cumulative8_s0', 'tsm8_s0')}
    assert '--num_segments 2 --epochs 2' in commands['tsm2_s0'] and '--tune_from' not in commands['tsm2_s0']
    for name in ('cumulative8_s0', 'tsm8_s0'):
        assert f"--tune_from {out / 'checkpoint' / 'tsm2_s0' / 'ckpt.best.pth.tar'}" in commands[name]
        assert '--epochs 1 ' in commands[name]
    assert '--cluster cumulative --frames 32 --num_segments 8' in commands['cumulative8_s0']
    lines = proc.stdout.splitlines()
    table = [line for line in lines if line.startswith('| ')]
    assert table[1].startswith('| tsm2 (the others start from it) | 2 sampled frames |')  # table[0]: the header
    assert table[2].startswith('| cumulative8 | all 32 frames -> 8 cumulative clusters |')
    assert table[3].startswith('| tsm8 | 8 sampled frames |')
    top1 = float(table[2].split('|')[4])
    assert 0 <= top1 <= 100
    assert lines[-1].startswith('wall: ') and lines[-2].startswith('TensorBoard: tensorboard --logdir')


def test_two_stream_study_trains_both_streams_and_fuses_their_scores(tmp_path):
    """scripts/repro_two_stream_cpu.sh on a miniature set: the flow frames are made from the RGB frames, the same
    configuration trains on RGB and on Flow, each best checkpoint's scores are saved and fused, and the table
    gives each stream, TSN's 1 : 1.5 fusion and the best weight on the validation set."""
    out = tmp_path / 'two'
    env = {**os.environ, 'OUT': str(out), 'SEEDS': '0', 'CONFIGS': 'tsm8', 'WARM': '', 'EPOCHS': '1', 'NTRAIN': '8',
           'NVAL': '4', 'EXTRA': '--device cpu', 'OMP_NUM_THREADS': '1',
           'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
    proc = subprocess.run(['bash', 'scripts/repro_two_stream_cpu.sh'], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    pairs = [len(list(d.glob('flow_x_*.jpg'))) for d in (out / 'data').rglob('*') if (d / '0.jpg').exists()]
    assert pairs == [31] * 12  # 32 frames give 31 pairs, in every video
    commands = {s: [line for line in (out / s / 'log' / 'tsm8_s0' / 'log.csv').read_text().splitlines()
                    if line.startswith('main.py ')][0] for s in ('rgb', 'flow')}
    assert commands['rgb'].startswith('main.py move4mnist RGB ')
    assert commands['flow'].startswith(f"main.py move4mnist Flow --root_path {out / 'data'} ")
    assert 'MODALITY=Flow' in (out / 'flow' / 'settings.txt').read_text()
    for name in ('rgb_tsm8_s0', 'flow_tsm8_s0', 'fused_tsm8_s0'):
        assert (out / 'scores' / f'{name}.npz').stat().st_size > 0
    assert 'fused tsm8 seed 0 (1 1.5): Overall Prec@1' in proc.stdout
    row = [line for line in (out / 'results.md').read_text().splitlines() if line.startswith('| tsm8 |')]
    cells = [c.strip() for c in row[0].split('|')[2:-1]]
    assert len(cells) == 5 and all(0 <= float(c.split()[0]) <= 100 for c in cells[:4])
    assert float(cells[3].split()[0]) >= max(float(c.split()[0]) for c in cells[:3])  # the grid holds 0, 0.4 and 1
    assert proc.stdout.splitlines()[-1].startswith('wall: ')


def test_distractor_sweep_makes_each_fraction_trains_plots_and_skips_finished_runs(tmp_path):
    """scripts/repro_distract_cpu.sh at a miniature scale: exact fractions in the data, a study per fraction, the
    table and the figure; started again, it trains nothing."""
    root, figure = tmp_path / 'distract', tmp_path / 'fig' / 'distract.png'
    env = {**os.environ, 'ROOT': str(root), 'FRACTIONS': '0 75', 'SEEDS': '0', 'CONFIGS': 'tsm8', 'WARM': '',
           'EPOCHS': '1', 'NTRAIN': '8', 'NVAL': '4', 'EXTRA': '--device cpu', 'FIGURE': str(figure),
           'OMP_NUM_THREADS': '2', 'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}

    def sweep() -> subprocess.CompletedProcess:
        proc = subprocess.run(['bash', 'scripts/repro_distract_cpu.sh'], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc
    first = sweep()
    for fraction, targets in ((0, 32), (75, 8)):
        relevance = (root / f'f{fraction}' / 'data' / 'val_relevance.txt').read_text().split('\n')[:-1]
        assert len(relevance) == 4 and all(line.split()[1].count('1') == targets for line in relevance)
    assert first.stdout.count('tsm8_s0: Testing Results') == 2
    rows = [line for line in (root / 'results.md').read_text().splitlines() if line.startswith('| TSM-8 |')]
    assert len(rows) == 1 and rows[0].count('took off') == 2
    assert figure.stat().st_size > 0
    env.update(RECORD=str(tmp_path / 'runs.csv'), MACHINE='here')  # the finished runs kept one row each
    assert 'Testing Results' not in sweep().stdout
    record = (tmp_path / 'runs.csv').read_text().splitlines()
    assert record[0] == 'config,fraction,seed,top1,took_off,machine' and len(record) == 3
    assert [line.split(',')[:3] for line in record[1:]] == [['tsm8', '0', '0'], ['tsm8', '75', '0']]
    assert all(line.endswith(',here') for line in record[1:])
    env['PLOT_CONFIGS'] = 'tsm8 tsmall'  # a later call's table shows the models named, run or not
    assert 'Testing Results' not in sweep().stdout
    rows = [line for line in (root / 'results.md').read_text().splitlines() if line.startswith('| TSM-')]
    assert len(rows) == 2 and rows[0].count('took off') == 2 and rows[1] == '| TSM-all | not run | not run |'
    bad = subprocess.run(['bash', 'scripts/repro_distract_cpu.sh'], cwd=ROOT, env={**env, 'FRACTIONS': '0 30'},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and '30% of 32 frames' in bad.stderr


def test_distractor_sweep_starts_every_share_from_one_starting_point_made_on_the_clean_set(tmp_path):
    """START=shared (the default): one TSM-2 per seed, trained on the 0% set in ROOT/start, is every share's
    --tune_from; no share trains its own. A WARM_DIR without the starting point stops the study, naming it."""
    root = tmp_path / 'distract'
    env = {**os.environ, 'ROOT': str(root), 'FRACTIONS': '0 75', 'SEEDS': '0', 'CONFIGS': 'tsm8', 'EPOCHS': '1',
           'WARM_EPOCHS': '1', 'NTRAIN': '8', 'NVAL': '4', 'EXTRA': '--device cpu', 'FIGURE': str(tmp_path / 'f.png'),
           'OMP_NUM_THREADS': '2', 'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
    proc = subprocess.run(['bash', 'scripts/repro_distract_cpu.sh'], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    start = root / 'start' / 'checkpoint' / 'tsm2_s0' / 'ckpt.best.pth.tar'
    assert start.is_file() and proc.stdout.count('tsm2_s0: Testing Results') == 1
    for fraction in (0, 75):
        assert not (root / f'f{fraction}' / 'checkpoint' / 'tsm2_s0').exists()
        command = (root / f'f{fraction}' / 'log' / 'tsm8_s0' / 'log.csv').read_text().splitlines()[0]
        assert f'--tune_from {start}' in command
    bad = run_study(tmp_path / 'other', expect=2, WARM='tsm2', WARM_DIR=str(tmp_path / 'nowhere'))
    assert f'no starting point {tmp_path / "nowhere"}/tsm2_s0/ckpt.best.pth.tar' in bad.stderr


def test_backbone_comparison_trains_evaluates_summarises_and_skips_finished_runs(tmp_path):
    """scripts/repro_backbones_cpu.sh at its tiniest: one clip backbone for an epoch on a miniature set, its best
    checkpoint evaluated from disk, the table; started again it trains nothing; misspelt names stop it first."""
    out = tmp_path / 'bb'
    env = {**os.environ, 'OUT': str(out), 'CONFIGS': 's3d', 'EPOCHS': '1', 'NTRAIN': '4', 'NVAL': '4', 'PARALLEL': '1',
           'EXTRA': '--device cpu', 'SUMMARY_FLAGS': '--no_profile', 'OMP_NUM_THREADS': '1',
           'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}

    def run(expect: int = 0, **settings: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(['bash', 'scripts/repro_backbones_cpu.sh'], cwd=ROOT, env={**env, **settings},
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == expect, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc
    for bad, why in (('s3d r3d_18-cum', 'not a clip length'), ('resnet18', 'not a clip --arch'),
                     ('c3d-8', 'c3d takes 16-frame clips only'), ('r3d_18-5', 'not a clip length dividing 32')):
        assert why in run(expect=2, CONFIGS=bad).stderr
    assert not out.exists()  # refused before the data and any run
    first = run()
    command = [line for line in (out / 'log' / 's3d' / 'log.csv').read_text().splitlines()
               if line.startswith('main.py ')][0]
    assert '--pretrain scratch' in command and '--epochs 1 ' in command
    assert '--arch s3d --num_segments 8 --sample_rate 4 --img_size 32 --scale_size 32' in command
    assert 's3d: Testing Results: Prec@1' in first.stdout
    row = [line for line in (out / 'results.md').read_text().splitlines() if line.startswith('| s3d |')][0]
    cells = [c.strip() for c in row.split('|')[2:-1]]
    assert cells[0] == '8x32² (stride 4)' and 0 <= float(cells[1]) <= 100 and cells[2] in ('never', 'yes, epoch 0')
    stamp = (out / 'checkpoint' / 's3d' / 'ckpt.pth.tar').stat().st_mtime_ns
    second = run()
    assert 's3d: Testing Results' not in second.stdout and '| s3d |' in second.stdout
    assert (out / 'checkpoint' / 's3d' / 'ckpt.pth.tar').stat().st_mtime_ns == stamp
    assert 'choose another OUT' in run(expect=2, EPOCHS='2').stderr


def test_gpu_distractor_check_runs_the_seeds_and_shares_side_by_side_on_a_cpu(tmp_path):
    """scripts/gpu_check_distract.sh as a dry run on the CPU (DEV=cpu): repro_distract_cpu.sh with JOBS=2 trains
    each seed's starting point, then both shares at once with both seeds each, every run from its own seed's
    start; the table has both seeds, and the logs and the figure land in OUT."""
    out, root = tmp_path / 'out', tmp_path / 'distract'
    env = {**os.environ, 'OUT': str(out), 'ROOT': str(root), 'DEV': 'cpu', 'FRACTIONS': '0 75', 'SEEDS': '0 1',
           'CONFIGS': 'tsm8', 'PLOT_CONFIGS': 'tsm8', 'JOBS': '2', 'PARALLEL': '2', 'EPOCHS': '1', 'WARM_EPOCHS': '1',
           'NTRAIN': '8', 'NVAL': '4', 'DEADLINE_S': '560', 'AFTER_S': '30',
           'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
    proc = subprocess.run(['bash', 'scripts/gpu_check_distract.sh'], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and 'sweep: exit 0' in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    for seed in (0, 1):
        start = root / 'start' / 'checkpoint' / f'tsm2_s{seed}' / 'ckpt.best.pth.tar'
        assert start.is_file()
        for fraction in (0, 75):
            command = (root / f'f{fraction}' / 'log' / f'tsm8_s{seed}' / 'log.csv').read_text().splitlines()[0]
            assert f'--tune_from {start}' in command and f'--seed {seed}' in command
    log = (out / 'distract.log').read_text()
    assert log.count('Testing Results') >= 6  # 2 starts, 2 shares x 2 seeds
    row = [line for line in (out / 'distract_results.md').read_text().splitlines() if line.startswith('| TSM-8 |')]
    assert len(row) == 1 and row[0].count('took off') == 2 and row[0].count('/2') == 2  # both seeds, both shares
    record = (out / 'distract_runs.csv').read_text().splitlines()  # every run's row, the machine named
    assert len(record) == 5 and all(line.startswith('tsm8,') and line.endswith(',cpu') for line in record[1:])
    assert (out / 'move4mnist_distract_gpu.png').stat().st_size > 0 and (out / 'distract_logs.tgz').stat().st_size > 0
