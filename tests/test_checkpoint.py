"""ops/checkpoint.py and tools/convert_checkpoint.py: TSM compatibility, safe loading, crash safety
(docs/DESIGN.md §5)."""
import argparse
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

import main as train_main
import opts
from builder import build_dataset, build_model
from ops.checkpoint import CheckpointError, link_checkpoint, load_checkpoint, load_model_weights, save_checkpoint
from ops.models import TSN
from ops.dataset_config import return_dataset
from tools import convert_checkpoint
from tools.make_move4mnist import main as make_move4mnist

ROOT = Path(__file__).resolve().parent.parent
TSM_KEYWORDS = dict(base_model='resnet18', pretrain='scratch', is_shift=True, shift_div=8, shift_place='blockres')


class Custom:
    """A class of the test's own: unpickling it needs this module's code."""

    def __init__(self) -> None:
        self.note = 'needs code'


def tsn(num_class: int = 4, seed: int = 0, **kw) -> TSN:
    torch.manual_seed(seed)
    return TSN(num_class, 8, 'RGB', **{**TSM_KEYWORDS, **kw}).eval()


def tsm_checkpoint(model: nn.Module, arch: str = 'resnet18') -> dict:
    """What TSM's main.py saves: the DataParallel-wrapped model's state dict ('module.' prefix)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return {'epoch': 25, 'arch': arch, 'best_prec1': 71.3, 'optimizer': optimizer.state_dict(),
            'state_dict': {'module.' + k: v for k, v in model.state_dict().items()}}


def tsm_key_names(num_class: int) -> dict:
    """TSM's parameter names, derived from torchvision's ResNet-18 by TSM's rules (not by our TSN):
    prefix ``base_model.``, blockres shift wraps each block's conv1 (``.conv1.net.``), ``fc`` becomes a
    parameter-free Dropout and the classifier is ``new_fc``."""
    names = {}
    for key, value in torchvision.models.resnet18(weights=None).state_dict().items():
        if key.startswith('fc.'):
            continue
        parts = key.split('.')
        if parts[0].startswith('layer') and parts[2] == 'conv1':
            parts.insert(3, 'net')
        names['base_model.' + '.'.join(parts)] = tuple(value.shape)
    names.update({'new_fc.weight': (num_class, 512), 'new_fc.bias': (num_class,)})
    return names


def test_our_state_dict_names_are_tsms():
    model = tsn()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == tsm_key_names(4)
    assert isinstance(model.base_model.fc, nn.Dropout)
    assert 'base_model.layer1.0.conv1.net.weight' in model.state_dict()


def test_tsm_checkpoint_gives_identical_logits(tmp_path):
    source, target = tsn(seed=1), tsn(seed=2)
    x = torch.randn(2, 8 * 3, 32, 32)
    path = str(tmp_path / 'TSM_move4mnist_RGB_resnet18_shift8_blockres_avg_segment8_e25.pth')
    torch.save(tsm_checkpoint(source), path)  # plain torch.save, as TSM writes it
    with torch.no_grad():
        assert not torch.equal(source(x), target(x))
        ckpt = load_checkpoint(path)
        load_model_weights(target, ckpt['state_dict'], path)
        assert torch.equal(source(x), target(x))
    assert ckpt['epoch'] == 25 and ckpt['best_prec1'] == 71.3


def test_old_tsm_files_without_bn_counter_or_with_dropout0_classifier_load(tmp_path):
    source, target = tsn(seed=1), tsn(seed=2)
    state = {k: v for k, v in tsm_checkpoint(source)['state_dict'].items() if 'num_batches_tracked' not in k}
    # TSM with --dropout 0 keeps the classifier as base_model.fc instead of new_fc
    state['module.base_model.fc.weight'] = state.pop('module.new_fc.weight')
    state['module.base_model.fc.bias'] = state.pop('module.new_fc.bias')
    load_model_weights(target, state, 'old.pth')
    x = torch.randn(1, 8 * 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


def test_tune_from_with_another_class_count_keeps_the_new_classifier(tmp_path, capsys):
    source, target = tsn(num_class=5, seed=1), tsn(num_class=4, seed=2)
    fresh_fc = target.new_fc.weight.detach().clone()
    path = str(tmp_path / 'tsm5.pth')
    torch.save(tsm_checkpoint(source), path)
    load_model_weights(target, load_checkpoint(path)['state_dict'], path, drop_classifier_if_mismatch=True)
    assert torch.equal(target.new_fc.weight, fresh_fc)
    assert torch.equal(target.base_model.layer4[1].conv1.net.weight, source.base_model.layer4[1].conv1.net.weight)
    assert 'keeping the new classifier' in capsys.readouterr().out
    with pytest.raises(CheckpointError, match='tsm5.pth'):  # --resume / --evaluate stay strict
        load_model_weights(tsn(num_class=4), load_checkpoint(path)['state_dict'], path)


def test_checkpoint_of_another_arch_fails_naming_the_file(tmp_path):
    path = str(tmp_path / 'resnet34.pth.tar')
    torch.save(tsm_checkpoint(tsn(base_model='resnet34'), 'resnet34'), path)
    with pytest.raises(CheckpointError) as err:
        load_model_weights(tsn(), load_checkpoint(path)['state_dict'], path)
    assert path in str(err.value) and '--arch' in str(err.value) and 'layer' in str(err.value)


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('move4mnist')
    make_move4mnist(['--out', str(out), '--num_train', '8', '--num_val', '4', '--seed', '0'])
    return out


def run_args(data: Path, tmp: Path, *extra: str, segments: int = 8) -> list:
    return ['move4mnist', 'RGB', '--root_path', str(data), '--arch', 'resnet18', '--num_segments', str(segments),
            '-b', '2', '-j', '0', '--img_size', '32', '--scale_size', '36', '--pretrain', 'scratch', '--shift',
            '--device', 'cpu', '--root_log', str(tmp / 'log'), '--root_model', str(tmp / 'ckpt'), *extra]


def test_main_evaluates_and_tunes_from_a_tsm_checkpoint(data, tmp_path, capsys):
    argv = run_args(data, tmp_path)
    source = build_model(opts.parse_args(argv), 4, print_spec=False).eval()
    path = str(tmp_path / 'tsm.pth')
    torch.save(tsm_checkpoint(source), path)
    args = opts.parse_args(argv)
    val = build_dataset(args, return_dataset('move4mnist', 'RGB', root_path=str(data)), source, train=False)
    with torch.no_grad():
        frames = torch.stack([val[i][0] for i in range(len(val))])
        labels = torch.tensor([val[i][1] for i in range(len(val))])
        expected = nn.functional.cross_entropy(source(frames), labels).item()
    result = train_main.main(argv + ['--evaluate', '--resume', path])
    assert result['count'] == 4 and result['loss'] == pytest.approx(expected, abs=1e-5)
    torch.save(tsm_checkpoint(build_model(opts.parse_args(argv), 7, print_spec=False)), path)
    train_main.main(argv + ['--tune_from', path, '--epochs', '0'])
    assert 'keeping the new classifier' in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- safe loading

def test_pickled_code_is_refused_and_a_trusted_file_converts(tmp_path, capsys):
    model = tsn()
    src, dst = str(tmp_path / 'old.pth.tar'), str(tmp_path / 'new.pth.tar')
    torch.save({'epoch': 3, 'arch': 'resnet18', 'state_dict': model.state_dict(), 'best_prec1': np.float64(55.5),
                'args': argparse.Namespace(arch='resnet18', lr_steps=[20, 40], num_segments=8),
                'extra': Custom(), 'mean': np.array([0.5, 0.25])}, src)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(src)
    message = str(err.value)
    assert src in message and 'refused' in message and 'convert_checkpoint.py' in message and '--trust' in message
    refused = subprocess.run([sys.executable, 'tools/convert_checkpoint.py', src, dst], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and '--trust' in refused.stderr  # not trusted: nothing unpickled or written
    assert not os.path.exists(dst)
    assert convert_checkpoint.main([src, dst, '--trust']) == 0
    assert 'Custom' in capsys.readouterr().out  # dropped, and said so
    ckpt = load_checkpoint(dst)  # weights_only=True
    assert ckpt['args'] == {'arch': 'resnet18', 'lr_steps': [20, 40], 'num_segments': 8}
    assert ckpt['best_prec1'] == 55.5 and 'extra' not in ckpt and torch.equal(ckpt['mean'], torch.tensor([0.5, 0.25]))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in ckpt['state_dict'].items())


def test_convert_writes_tsm_layout_and_unwraps_whole_models(tmp_path):
    model = tsn()
    src, dst = str(tmp_path / 'whole.pth'), str(tmp_path / 'tsm.pth')
    torch.save(model, src)  # a pickled nn.Module: needs the project's code to load
    assert convert_checkpoint.main([src, dst, '--trust', '--module_prefix', 'add']) == 0
    state = load_checkpoint(dst)['state_dict']
    assert set(state) == {'module.' + k for k in model.state_dict()}
    load_model_weights(tsn(seed=3), state, dst)


def test_a_torn_file_is_reported_as_corrupt_not_as_pickled_code(tmp_path):
    path = tmp_path / 'torn.pth.tar'
    save_checkpoint({'state_dict': tsn().state_dict()}, str(path))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(path))
    assert str(path) in str(err.value) and 'refused' not in str(err.value)


# ------------------------------------------------------------------------------------------- crash safety

def test_crash_in_the_middle_of_save_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / 'ckpt.pth.tar'
    save_checkpoint({'epoch': 1, 'state_dict': {'w': torch.ones(3)}}, str(path))
    before = path.read_bytes()

    def torn_save(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 half a checkpoint')
        raise KeyboardInterrupt  # as a Ctrl-C mid-write; BaseException, not Exception

    monkeypatch.setattr(torch, 'save', torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'epoch': 2, 'state_dict': {'w': torch.zeros(3)}}, str(path))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['ckpt.pth.tar']
    assert load_checkpoint(str(path))['epoch'] == 1


def test_ctrl_c_during_save_finishes_the_file_then_interrupts(tmp_path, monkeypatch):
    """torch's zip writer turns a Ctrl-C inside torch.save into a RuntimeError; the save holds it instead."""
    path = tmp_path / 'ckpt.pth.tar'
    real_save = torch.save

    def save_with_ctrl_c(obj, f, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the write
        time.sleep(0.05)
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, 'save', save_with_ctrl_c)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as at a terminal (not a background job)
    try:
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint({'epoch': 2, 'state_dict': {'w': torch.zeros(3)}}, str(path))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
    finally:
        signal.signal(signal.SIGINT, before)
    assert load_checkpoint(str(path))['epoch'] == 2 and os.listdir(tmp_path) == ['ckpt.pth.tar']


def test_the_best_checkpoint_is_a_link_that_later_saves_leave_alone(tmp_path):
    last, best = tmp_path / 'ckpt.pth.tar', tmp_path / 'ckpt.best.pth.tar'
    save_checkpoint({'epoch': 1, 'state_dict': {'w': torch.ones(3)}}, str(last))
    link_checkpoint(str(last), str(best))
    assert os.stat(best).st_ino == os.stat(last).st_ino  # one file on disk, not two
    save_checkpoint({'epoch': 2, 'state_dict': {'w': torch.zeros(3)}}, str(last))  # a later, worse epoch
    assert load_checkpoint(str(best))['epoch'] == 1 and load_checkpoint(str(last))['epoch'] == 2
    link_checkpoint(str(last), str(best))  # a new best replaces the old one
    assert load_checkpoint(str(best))['epoch'] == 2
    assert sorted(os.listdir(tmp_path)) == ['ckpt.best.pth.tar', 'ckpt.pth.tar']


def test_the_best_checkpoint_is_copied_where_hard_links_fail(tmp_path, monkeypatch):
    last, best = tmp_path / 'ckpt.pth.tar', tmp_path / 'ckpt.best.pth.tar'
    save_checkpoint({'epoch': 1, 'state_dict': {'w': torch.ones(3)}}, str(last))

    def no_links(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, 'Operation not permitted')

    monkeypatch.setattr(os, 'link', no_links)
    link_checkpoint(str(last), str(best))
    assert os.stat(best).st_ino != os.stat(last).st_ino and best.read_bytes() == last.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ['ckpt.best.pth.tar', 'ckpt.pth.tar']


def test_training_killed_mid_epoch_resumes_where_it_stopped(data, tmp_path):
    argv = run_args(data, tmp_path, '--store_name', 'run', '--epochs', '2', '--save_freq', '1', '-p', '1',
                    '--npb', '--eval-freq', '2', segments=4)
    ckpt = tmp_path / 'ckpt' / 'run' / 'ckpt.pth.tar'
    env = {**os.environ, 'OMP_NUM_THREADS': '2'}
    proc = subprocess.Popen([sys.executable, 'main.py', *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    saved = load_checkpoint(str(ckpt))  # whatever moment the kill hit, the file is whole
    epoch, iteration = saved['epoch'], saved['iteration']
    assert (epoch, iteration) != (2, 0)
    # a kill during a save leaves its temporary file (planted here, as the kill may have missed a save)
    (ckpt.parent / '.tmp-killed.pth.tar').write_bytes(b'PK\x03\x04 half a checkpoint')
    done = subprocess.run([sys.executable, 'main.py', *argv, '--resume', str(ckpt)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"(epoch {epoch}, iteration {iteration})" in done.stdout
    assert '.tmp-killed.pth.tar, left by a save that was killed' in done.stdout
    assert not [n for n in os.listdir(ckpt.parent) if n.startswith('.tmp-')]
    log = (tmp_path / 'log' / 'run' / 'log.csv').read_text().splitlines()
    resumed = [line for line in log[[i for i, line in enumerate(log) if '--resume' in line][-1]:]
               if line.startswith('Epoch: [')]
    assert resumed[0].startswith(f'Epoch: [{epoch}][{iteration}/4]')  # 8 videos, -b 2: 4 iterations
    assert resumed[-1].startswith('Epoch: [1][3/4]')
    final = load_checkpoint(str(ckpt))
    assert (final['epoch'], final['iteration']) == (2, 0) and 'Testing Results' in '\n'.join(log)
