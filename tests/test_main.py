"""main.py end to end on a tiny Move4MNIST: train, evaluate, resume, determinism, and bad input that stops
with a last stderr line naming the culprit."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch

import main as train_main
import opts
from builder import build_model
from ops.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent
RESULTS = re.compile(r'Testing Results: Prec@1 ([\d.]+) Prec@5 ([\d.]+) Loss ([\d.]+)')


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    from tools.make_move4mnist import main as make_move4mnist
    out = tmp_path_factory.mktemp('move4mnist')
    make_move4mnist(['--out', str(out), '--num_train', '8', '--num_val', '4', '--seed', '0'])
    return out


def run_args(data: Path, out: Path, *extra: str) -> List[str]:
    return ['move4mnist', 'RGB', '--root_path', str(data), '--arch', 'resnet18', '--num_segments', '4', '-b', '4',
            '-j', '0', '--img_size', '32', '--scale_size', '36', '--pretrain', 'scratch', '--shift', '--npb',
            '--device', 'cpu', '--lr', '0.01', '--eval-freq', '1', '--root_log', str(out / 'log'),
            '--root_model', str(out / 'ckpt'), '--store_name', 'run', '--seed', '3', *extra]


def start(argv: List[str]) -> subprocess.Popen:
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}  # runs go two or three at a time on two cores
    # Ctrl-C as at a terminal, also where the suite runs in the background (which ignores SIGINT, and the child
    # Python would inherit that)
    return subprocess.Popen([sys.executable, 'main.py', *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(proc: subprocess.Popen, timeout: int = 300) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope='module')
def runs(data, tmp_path_factory) -> Dict[str, Path]:
    """Two identical one-epoch runs (same --seed) in separate folders, side by side."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ('a', 'b')}
    procs = {name: start(run_args(data, folder, '--epochs', '1')) for name, folder in folders.items()}
    for name, proc in procs.items():
        done = finish(proc)
        assert done.returncode == 0, done.stderr[-3000:]
    return folders


def logged_results(folder: Path) -> List[tuple]:
    return [tuple(map(float, m)) for m in RESULTS.findall((folder / 'log' / 'run' / 'log.csv').read_text())]


def test_evaluate_resume_reproduces_the_logged_validation(data, runs):
    (top1, top5, loss), = logged_results(runs['a'])
    best = runs['a'] / 'ckpt' / 'run' / 'ckpt.best.pth.tar'
    result = train_main.main(run_args(data, runs['a'] / 'eval', '--evaluate', '--resume', str(best)))
    assert result['count'] == 4
    assert result['top1'] == pytest.approx(top1, abs=1e-3) and result['top5'] == pytest.approx(top5, abs=1e-3)
    assert result['loss'] == pytest.approx(loss, abs=2e-5)  # logged with 5 decimals


def test_resume_continues_the_epoch_count(data, runs, tmp_path):
    folder = tmp_path / 'resumed'
    shutil.copytree(runs['a'], folder)
    ckpt = folder / 'ckpt' / 'run' / 'ckpt.pth.tar'
    assert load_checkpoint(str(ckpt))['epoch'] == 1
    train_main.main(run_args(data, folder, '--epochs', '2', '--resume', str(ckpt)))
    log = (folder / 'log' / 'run' / 'log.csv').read_text()
    assert log.count('Epoch: [0][0/2]') == 1 and log.count('Epoch: [1][0/2]') == 1  # epoch 0 not trained again
    assert len(logged_results(folder)) == 2
    assert load_checkpoint(str(ckpt))['epoch'] == 2


def test_same_seed_gives_the_same_weights(runs):
    a, b = (load_checkpoint(str(runs[n] / 'ckpt' / 'run' / 'ckpt.pth.tar'))['state_dict'] for n in ('a', 'b'))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert logged_results(runs['a']) == logged_results(runs['b'])


@pytest.fixture(scope='module')
def bad_inputs(data, tmp_path_factory) -> Dict[str, tuple]:
    """Case -> (flags, what the error must name)."""
    tmp = tmp_path_factory.mktemp('bad')
    good_train, good_val = ((data / f'{s}_videofolder.txt').read_text().splitlines() for s in ('train', 'val'))

    def write(name: str, lines: List[str]) -> str:
        (tmp / name).write_text('\n'.join(lines) + '\n')
        return str(tmp / name)

    broken = data / 'movingmnist' / 'jpg' / 'train' / 'left_broken'
    shutil.copytree(data / 'movingmnist' / 'jpg' / 'train' / 'left_0', broken)
    for i in range(4, 32):  # listed with 32 frames; every sampled segment past the first misses its frame
        (broken / f'{i}.jpg').unlink()
    other = build_model(opts.parse_args(run_args(data, tmp, '--arch', 'resnet34')), 4, print_spec=False)
    save_checkpoint({'epoch': 1, 'arch': 'resnet34', 'state_dict': other.state_dict()}, str(tmp / 'r34.pth.tar'))
    malformed = write('malformed.txt', [good_val[0], 'movingmnist/jpg/val/right_0 32', *good_val[2:]])
    label = write('label.txt', [*good_val[:2], 'movingmnist/jpg/val/up_0 32 7'])
    missing = write('missing.txt', ['movingmnist/jpg/train/left_broken 32 0', *good_train[1:]])
    return {
        'malformed_line': (['--val_list', malformed], [f'{malformed}:2', 'path num_frames label']),
        'label_outside': (['--val_list', label], [f'{label}:3', 'label 7']),
        'missing_frame': (['--train_list', missing], ['frame not found', str(broken), f'{missing}:1']),
        'missing_list': (['--val_list', str(tmp / 'nope.txt')], ['list file not found', 'nope.txt']),
        'other_arch': (['--resume', str(tmp / 'r34.pth.tar')], [str(tmp / 'r34.pth.tar'), 'does not match']),
    }


@pytest.mark.parametrize('case', ['malformed_line', 'label_outside', 'missing_frame'])
def test_bad_input_stops_naming_the_culprit(case, data, bad_inputs, tmp_path):
    """In-process (cheap): the exception's text is what the traceback's last stderr line shows."""
    flags, names = bad_inputs[case]
    with pytest.raises(Exception) as err:
        train_main.main(run_args(data, tmp_path, '--epochs', '1', *flags))
    last = f"{type(err.value).__name__}: {err.value}"
    assert '\n' not in last and all(part in last for part in names), last


def test_bad_input_through_the_command_line_ends_with_the_culprit_on_stderr(data, bad_inputs, tmp_path):
    cases = {name: bad_inputs[name] for name in ('missing_list', 'other_arch')}
    flags, names = bad_inputs['missing_frame']  # raised in a loader worker, which re-raises its traceback
    cases['missing_frame_in_a_worker'] = ([*flags, '-j', '1'], names)
    procs = {name: start(run_args(data, tmp_path / name, '--epochs', '1', *flags))
             for name, (flags, _) in cases.items()}
    for name, proc in procs.items():
        done = finish(proc)
        last = done.stderr.splitlines()[-1]  # literally the last line, not the last non-blank one
        assert done.returncode != 0 and last.startswith('error: '), f"{name}: {done.returncode}, {last!r}"
        for part in cases[name][1]:
            assert part in last, f"{name}: {part!r} not in the last stderr line {last!r}"


@pytest.mark.parametrize('method,frames,extra', [
    ('uniform', '32', []),
    ('slope', '32', ['--optimizer', 'adamw', '--lr', '0.001']),
    ('cumulative', 'all', ['--chunk_frames', '8', '--freeze_early_bn']),
])
def test_each_clustering_method_trains_and_evaluates_through_main(method, frames, extra, data, tmp_path):
    argv = [a for a in run_args(data, tmp_path, '--epochs', '1') if a not in ('--store_name', 'run')]
    argv += ['--cluster', method, '--frames', frames, *extra]
    result = train_main.main(argv)
    name = f'TSM_move4mnist_RGB_resnet18_shift8_blockres_avg_{method}4_frames{frames}_e1_scratch'
    assert (tmp_path / 'ckpt' / name / 'ckpt.best.pth.tar').is_file()
    ckpt = load_checkpoint(str(tmp_path / 'ckpt' / name / 'ckpt.best.pth.tar'))
    assert ckpt['args']['cluster'] == method and str(ckpt['args']['frames']) == frames
    again = train_main.main(argv + ['--evaluate', '--resume', str(tmp_path / 'ckpt' / name / 'ckpt.best.pth.tar')])
    assert again['top1'] == pytest.approx(result['top1']) and again['loss'] == pytest.approx(result['loss'], rel=1e-5)


def test_bf16_and_channels_last_train_through_main(data, tmp_path):
    argv = run_args(data, tmp_path, '--epochs', '1', '--amp', 'bf16', '--channels_last', '--cluster', 'slope',
                    '--frames', '16')
    result = train_main.main(argv)
    assert result['count'] == 4 and result['loss'] == result['loss']  # finite, not NaN
    log = (tmp_path / 'log' / 'run' / 'log.csv').read_text()
    assert 'nan' not in log.lower()


@pytest.mark.parametrize('arch_flags,name', [
    (['--arch', 'x3d_xs', '--cluster', 'cumulative', '--frames', '32', '--num_segments', '4'],
     'TSM_move4mnist_RGB_x3d_xs_avg_cumulative4_frames32_e1_scratch'),
    (['--arch', 'slowfast_r50', '--num_segments', '32', '--slowfast_alpha', '8'],
     'TSM_move4mnist_RGB_slowfast_r50_alpha8_avg_segment32_e1_scratch'),
    (['--arch', 'slowfast_r50', '--cluster', 'slope', '--frames', '16', '--num_segments', '4'],
     'TSM_move4mnist_RGB_slowfast_r50_avg_slope4_frames16_e1_scratch'),
])
def test_x3d_and_slowfast_train_and_evaluate_through_main(arch_flags, name, data, tmp_path):
    """issue 19's commands train an epoch; evaluation takes the model (alpha included) from the checkpoint."""
    argv = [a for a in run_args(data, tmp_path, '--epochs', '1') if a not in ('--store_name', 'run', '--shift')]
    result = train_main.main(argv + arch_flags)
    ckpt = tmp_path / 'ckpt' / name / 'ckpt.best.pth.tar'
    stored = load_checkpoint(str(ckpt))['args']
    assert result['count'] == 4 and result['loss'] == result['loss'] and stored['arch'] == arch_flags[1]
    without_alpha = [a for a in arch_flags if a not in ('--slowfast_alpha', '8')]  # the checkpoint stores it
    again = train_main.main(argv + without_alpha + ['--evaluate', '--resume', str(ckpt)])
    assert again['top1'] == pytest.approx(result['top1']) and again['loss'] == pytest.approx(result['loss'], rel=1e-5)


def test_main_tunes_x3d_from_a_converted_pytorchvideo_checkpoint(data, tmp_path, capsys):
    from archs.x3d import build_x3d
    from tools import convert_checkpoint
    net = build_x3d('x3d_xs')
    torch.save({'model_state': net.state_dict(), 'epoch': 1}, tmp_path / 'X3D_XS.pyth')
    converted = str(tmp_path / 'x3d_xs.pth.tar')
    assert convert_checkpoint.main([str(tmp_path / 'X3D_XS.pyth'), converted, '--from', 'pytorchvideo',
                                    '--arch', 'x3d_xs']) == 0
    argv = [a for a in run_args(data, tmp_path, '--epochs', '1') if a != '--shift']
    train_main.main(argv + ['--arch', 'x3d_xs', '--tune_from', converted, '--lr', '0'])
    assert f'fine-tuning from {converted}' in capsys.readouterr().out
    tuned = load_checkpoint(str(tmp_path / 'ckpt' / 'run' / 'ckpt.pth.tar'))['state_dict']
    assert torch.equal(tuned['base_model.blocks.1.res_blocks.0.branch2.conv_a.weight'],
                       net.blocks[1].res_blocks[0].branch2.conv_a.weight)  # lr 0: the converted weights as they were


# ----------------------------------------------------------------------------- data time against compute time

class SlowLoader:
    """``n`` batches (frames, labels, lengths, skipped) as main.py's loader gives them, each after ``wait`` s."""

    def __init__(self, n: int, wait: float) -> None:
        self.n, self.wait = n, wait

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            time.sleep(self.wait)
            yield torch.randn(2, 6), torch.tensor([0, 1]), torch.tensor([1, 1]), 0


class SlowModel(torch.nn.Module):
    """(N, 6) -> (N, 4) scores, ``wait`` seconds a forward."""

    def __init__(self, wait: float) -> None:
        super().__init__()
        self.fc, self.wait = torch.nn.Linear(6, 4), wait

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        time.sleep(self.wait)
        return self.fc(x)


def test_the_epoch_logs_data_time_against_compute_time(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    args = opts.parse_args(['move4mnist', 'RGB', '--device', 'cpu', '-p', '1'])
    model = SlowModel(0.1)
    log = train_main.RunLog(str(tmp_path))
    start = time.perf_counter()
    train_main.train_one_epoch(model, SlowLoader(4, 0.05), torch.optim.SGD(model.parameters(), 0.1),
                               torch.amp.GradScaler('cpu', enabled=False), 0, 0, args, torch.device('cpu'), log,
                               lambda e, it: None)
    wall = time.perf_counter() - start
    log.close()
    steps = re.findall(r'Epoch: \[0\]\[\d/4\].*\tTime ([\d.]+) \(([\d.]+)\)\tData ([\d.]+) \(([\d.]+)\)\tLoss',
                       (tmp_path / 'log.csv').read_text())
    assert len(steps) == 4
    for step_s, step_avg, data_s, data_avg in (map(float, s) for s in steps):
        assert step_s >= data_s >= 0.05 and step_avg >= data_avg >= 0.05 and step_s >= 0.15
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    data, compute = (events.Scalars(f'time/{key}_s')[0].value for key in ('data', 'compute'))
    # generous bounds, no speed target: each wait is data, each forward compute, and they add up to the epoch
    assert 4 * 0.05 <= data < 4 * 0.1 and compute >= 4 * 0.1
    assert wall - 0.5 < data + compute <= wall


# ----------------------------------------------------------------------------- evaluation takes the stored model

def without(argv: List[str], flag: str) -> List[str]:
    i = argv.index(flag)
    return argv[:i] + argv[i + 2:]


def test_evaluate_takes_the_checkpoints_model_settings(data, runs):
    """--num_segments left out (default 8): the checkpoint's 4 segments are evaluated, not a model it never was."""
    (top1, top5, loss), = logged_results(runs['a'])
    best = str(runs['a'] / 'ckpt' / 'run' / 'ckpt.best.pth.tar')
    argv = without(run_args(data, runs['a'] / 'eval', '--evaluate', '--resume', best), '--num_segments')
    result = train_main.main(argv)
    assert result['top1'] == pytest.approx(top1, abs=1e-3) and result['loss'] == pytest.approx(loss, abs=2e-5)


@pytest.mark.parametrize('flags,named', [
    (['--cluster', 'uniform', '--frames', '8'], ["--cluster: trained with 'none'", "'uniform'", '--frames']),
    (['--num_segments', '6'], ['--num_segments: trained with 4', 'says 6']),
    (['--arch', 'resnet34'], ["'resnet18'", "'resnet34'"]),
])
def test_evaluate_refuses_contradicting_model_flags_unless_overridden(data, runs, flags, named):
    best = str(runs['a'] / 'ckpt' / 'run' / 'ckpt.best.pth.tar')
    argv = run_args(data, runs['a'] / 'eval', '--evaluate', '--resume', best, *flags)
    with pytest.raises(ValueError) as err:
        train_main.main(argv)
    assert best in str(err.value) and all(n in str(err.value) for n in named), err.value
    if flags[0] == '--num_segments':  # an ablation asked for: TSM with 6 segments
        assert train_main.main(argv + ['--override_model_args'])['count'] == 4


def test_unwritable_run_folder_stops_before_training(data, tmp_path):
    (tmp_path / 'file').write_text('not a folder')
    argv = run_args(data, tmp_path, '--epochs', '1', '--root_model', str(tmp_path / 'file' / 'ckpt'))
    with pytest.raises(Exception) as err:
        train_main.main(argv)
    assert str(tmp_path / 'file' / 'ckpt' / 'run') in str(err.value) and '--root_model' in str(err.value)
    assert not (tmp_path / 'log' / 'run' / 'log.csv').exists()  # stopped before the log, the data and the model


# ----------------------------------------------------------------------------- interruption and exact resume

def test_ctrl_c_names_the_last_checkpoint_and_exits_130(data, tmp_path):
    proc = start(run_args(data, tmp_path, '--epochs', '50', '--save_freq', '1', '-b', '2'))
    ckpt = tmp_path / 'ckpt' / 'run' / 'ckpt.pth.tar'
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    done = finish(proc)
    assert done.returncode == 130, done.stderr[-2000:]
    assert 'Traceback' not in done.stderr, done.stderr[-2000:]
    last = done.stderr.splitlines()[-1]
    assert last.startswith('interrupted: the last complete checkpoint is') and str(ckpt) in last, last


KILLER = str(ROOT / 'tests' / 'kill_after_save.py')


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_figures(data, tmp_path):
    """Dropout 0.5, random crops and flips, loader workers 0 and 2: killed (SIGKILL) after the checkpoint at
    iteration 2 of epoch 0 (of 4), resumed in a fresh process, it ends with the uninterrupted run's weights,
    validation loss and top-1."""
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    flags = ['--epochs', '2', '--save_freq', '2', '-b', '2', '--dropout', '0.5']
    folders = {name: tmp_path / name for name in ('whole', 'kill0', 'kill2')}
    procs = {'whole': start(run_args(data, folders['whole'], *flags, '-j', '0'))}
    for name, workers in (('kill0', '0'), ('kill2', '2')):
        procs[name] = subprocess.Popen(
            [sys.executable, KILLER, '0', '2', *run_args(data, folders[name], *flags),
             '-j', workers], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for name, proc in procs.items():
        done = finish(proc)
        assert done.returncode == (0 if name == 'whole' else -signal.SIGKILL), f"{name}: {done.stderr[-2000:]}"
    for name in ('kill0', 'kill2'):
        ckpt = load_checkpoint(str(folders[name] / 'ckpt' / 'run' / 'ckpt.pth.tar'))
        assert (ckpt['epoch'], ckpt['iteration']) == (0, 2)
    resumed = {name: start(run_args(data, folders[name], *flags, '-j', name[-1], '--resume',
                                     str(folders[name] / 'ckpt' / 'run' / 'ckpt.pth.tar'))) for name in ('kill0', 'kill2')}
    for name, proc in resumed.items():
        done = finish(proc)
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
    whole = load_checkpoint(str(folders['whole'] / 'ckpt' / 'run' / 'ckpt.pth.tar'))
    for name in ('kill0', 'kill2'):
        again = load_checkpoint(str(folders[name] / 'ckpt' / 'run' / 'ckpt.pth.tar'))
        assert again['epoch'] == 2 and again['best_prec1'] == whole['best_prec1']
        worst = max((again['state_dict'][k].double() - v.double()).abs().max().item()
                    for k, v in whole['state_dict'].items())
        assert worst <= 1e-6, f"{name}: weights differ by {worst}"
        assert logged_results(folders[name])[-1] == logged_results(folders['whole'])[-1], name


def test_resume_refuses_what_would_not_continue_the_run(data, tmp_path):
    """Training from a checkpoint: contradicting model flags are refused (as in evaluation), and a mid-epoch
    checkpoint only resumes with its batch size (the videos already done are skipped by count)."""
    path = tmp_path / 'mid.pth.tar'
    args = opts.parse_args(run_args(data, tmp_path, '-b', '2'))
    model = build_model(args, 4, print_spec=False)
    save_checkpoint({'epoch': 0, 'iteration': 2, 'arch': 'resnet18', 'state_dict': model.state_dict(),
                     'args': vars(args)}, str(path))
    with pytest.raises(ValueError, match="--num_segments: trained with 4, the command line says 6"):
        train_main.main(run_args(data, tmp_path, '-b', '2', '--num_segments', '6', '--resume', str(path)))
    with pytest.raises(ValueError) as err:
        train_main.main(run_args(data, tmp_path, '-b', '4', '--resume', str(path)))
    assert str(path) in str(err.value) and '-b 2' in str(err.value) and '-b 4' in str(err.value), err.value


# ----------------------------------------------------------------------------- a clip backbone (3D CNN) end to end

def clip_args(data: Path, out: Path, *extra: str, arch: str = 'r3d_18') -> List[str]:
    """``run_args`` for a clip network (default r3d_18), which has no temporal shift."""
    return [a for a in run_args(data, out, '--arch', arch) if a != '--shift'] + list(extra)


@pytest.mark.parametrize('flags', [['--num_segments', '4'], ['--num_segments', '4', '--amp', 'bf16'],
                                   ['--cluster', 'cumulative', '--frames', '32', '--num_segments', '8']],
                         ids=['clip', 'bf16', 'clustered-32-to-8'])
def test_clip_backbone_trains_and_evaluate_resume_reproduces_the_validation(data, tmp_path, flags):
    """r3d_18 on 4-frame clips, the same in bf16 autocast, and the issue's check (all 32 frames through the stem and
    layer1, cumulative clustering into 8, layer2-4 on the 8-step clip): an epoch trains, and --evaluate --resume of
    the best checkpoint gives the logged validation."""
    try:
        train_main.main(clip_args(data, tmp_path, '--epochs', '1', *flags))
    except FloatingPointError:
        # bf16 on a CPU is not bit-deterministic (docs/DESIGN.md §6): once, in the whole suite in CI on a 2-core AMD
        # EPYC (2026-12-04), the second step's loss came out NaN, and main.py stopped as it should; this test alone
        # trained 75 times out of 75 there. A second try, in a new folder, must train.
        if '--amp' not in flags:
            raise
        tmp_path = tmp_path / 'again'
        train_main.main(clip_args(data, tmp_path, '--epochs', '1', *flags))
    (top1, top5, loss), = logged_results(tmp_path)
    assert loss == loss  # not NaN
    best = tmp_path / 'ckpt' / 'run' / 'ckpt.best.pth.tar'
    assert load_checkpoint(str(best))['args']['arch'] == 'r3d_18'
    result = train_main.main(clip_args(data, tmp_path / 'eval', *flags, '--evaluate', '--resume', str(best)))
    assert result['count'] == 4 and result['top1'] == pytest.approx(top1, abs=1e-3)
    assert result['loss'] == pytest.approx(loss, abs=2e-5 if '--amp' not in flags else 1e-3)


def test_clip_backbone_resumed_run_ends_with_the_uninterrupted_weights(data, tmp_path):
    """Two epochs of mc3_18 (the smallest clip network) in one run, and one epoch then --resume to two: the same
    weights (no validation: cheap)."""
    flags = ['--num_segments', '2', '--dropout', '0.5', '--eval-freq', '5', '--epochs', '2']
    train_main.main(clip_args(data, tmp_path / 'whole', *flags, arch='mc3_18'))
    train_main.main(clip_args(data, tmp_path / 'half', *flags[:-1], '1', arch='mc3_18'))
    half = tmp_path / 'half' / 'ckpt' / 'run' / 'ckpt.pth.tar'
    train_main.main(clip_args(data, tmp_path / 'half', *flags, '--resume', str(half), arch='mc3_18'))
    whole = load_checkpoint(str(tmp_path / 'whole' / 'ckpt' / 'run' / 'ckpt.pth.tar'))['state_dict']
    again = load_checkpoint(str(half))
    assert again['epoch'] == 2
    worst = max((again['state_dict'][k].double() - v.double()).abs().max().item() for k, v in whole.items())
    assert worst <= 1e-6, f"weights differ by {worst}"


def test_a_nonfinite_loss_stops_the_run_naming_the_step_before_any_save(data, tmp_path):
    """A rate that blows the weights up: the first inf/NaN loss stops the run (no silent training on NaN), the
    error names the epoch and iteration, and no checkpoint holds the spoilt weights."""
    with pytest.raises(FloatingPointError) as err:
        train_main.main(run_args(data, tmp_path, '--epochs', '2', '--lr', '1e30', '--clip-gradient', '0'))
    text = str(err.value)
    assert re.search(r'training loss is (nan|inf) at epoch 0, iteration 1 \(batch 4x12x32x32, lr 1e\+30', text), text
    assert '\n' not in text and '--amp none' in text
    assert not list((tmp_path / 'ckpt').rglob('*.pth.tar'))
