"""ops/distributed.py and main.py under torchrun: 2 gloo processes on the CPU equal 1 process with the same
global batch; rank 0 alone writes; exact validation counts.

Run as a script (``torchrun ... tests/test_distributed.py OUT_DIR MAIN_ARGS...``) this file is the worker of
the equality test: it applies ``deterministic_hooks`` and calls ``main.main``.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a torchrun worker script
    sys.path.insert(0, str(ROOT))

import builder  # noqa: E402
import main as train_main  # noqa: E402
from ops import distributed as dist_utils  # noqa: E402
from ops.checkpoint import load_checkpoint  # noqa: E402
from ops.models import TSN  # noqa: E402


def deterministic_hooks(setattr_: Callable, train_losses: List[float]) -> None:
    """Test-only changes under which N processes must match 1 process with the same global batch.

    * training data without random augmentation (the validation crop, segment centres): the ranks' random
      draws differ from a single process's, whatever the seeds;
    * every BatchNorm normalises with its running statistics (eval mode), because in training mode it uses
      the statistics of the batch a process sees, which is half the global batch here (``--sync_bn`` would
      share them, but torch's SyncBatchNorm needs CUDA);
    * the per-epoch mean training loss of this process is appended to ``train_losses``.
    Together with ``--dropout 0`` each sample's loss is a function of the weights only, DDP averages the
    per-process mean gradients, which for equal shards is the mean gradient of the global batch.
    """
    def build_dataset(args, config, model, train, transform=None):
        data = builder.build_dataset(args, config, model, train, builder.build_transform(args, model, False, False))
        data.random_shift = False
        return data

    def train(self, mode=True):
        original_train(self, mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def train_one_epoch(*args, **kwargs):
        stats = original_epoch(*args, **kwargs)
        train_losses.append(stats['loss'])
        return stats

    original_train, original_epoch = TSN.train, train_main.train_one_epoch
    setattr_(train_main, 'build_dataset', build_dataset)
    setattr_(TSN, 'train', train)
    setattr_(train_main, 'train_one_epoch', train_one_epoch)


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    from tools.make_move4mnist import main as make_move4mnist
    out = tmp_path_factory.mktemp('move4mnist')
    make_move4mnist(['--out', str(out), '--num_train', '16', '--num_val', '5', '--seed', '0'])
    return out


def run_args(data: Path, tmp: Path, batch: int, *extra: str) -> List[str]:
    return ['move4mnist', 'RGB', '--root_path', str(data), '--arch', 'resnet18', '--img_size', '32',
            '--scale_size', '32', '--pretrain', 'scratch', '--shift', '--device', 'cpu', '-j', '0', '-b', str(batch),
            '--root_log', str(tmp / 'log'), '--root_model', str(tmp / 'ckpt'), '--store_name', 'run', *extra]


def torchrun(args: List[str], timeout: int = 150) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK')}
    env['OMP_NUM_THREADS'] = '1'
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_two_processes_equal_one_with_the_same_global_batch(data, tmp_path, monkeypatch):
    flags = ['--cluster', 'cumulative', '--frames', '8', '--num_segments', '4', '--dropout', '0', '--lr', '0.02',
             '--epochs', '2', '--eval-freq', '1']  # 16 videos: 2 steps of 8 per epoch
    torchrun([__file__, str(tmp_path / 'ddp'), *run_args(data, tmp_path / 'ddp', 4, *flags)])
    ranks = [json.loads((tmp_path / 'ddp' / f'rank{r}.json').read_text()) for r in (0, 1)]

    single_losses: List[float] = []
    deterministic_hooks(monkeypatch.setattr, single_losses)
    single = train_main.main(run_args(data, tmp_path / 'one', 8, *flags))

    # training loss: the ranks' means over equal shards average to the global batch's
    ddp_losses = [(a + b) / 2 for a, b in zip(ranks[0]['train_loss'], ranks[1]['train_loss'])]
    assert ddp_losses == pytest.approx(single_losses, rel=1e-5) and len(ddp_losses) == 2
    # validation: 5 videos split 3 + 2, counted once each, summed exactly
    for rank in ranks:
        assert rank['result']['count'] == 5
        assert rank['result']['loss'] == pytest.approx(single['loss'], rel=1e-5)
        assert rank['result']['top1'] == single['top1']
    # the weights after 4 steps
    one = load_checkpoint(str(tmp_path / 'one' / 'ckpt' / 'run' / 'ckpt.pth.tar'))['state_dict']
    two = load_checkpoint(str(tmp_path / 'ddp' / 'ckpt' / 'run' / 'ckpt.pth.tar'))['state_dict']
    torch.manual_seed(0)
    initial = builder.build_model(train_main.parse_args(run_args(data, tmp_path, 8, *flags)), 4, False).state_dict()
    assert set(one) == set(two)
    moved = max((one[k].float() - initial[k].float()).abs().max().item() for k in one)
    assert moved > 1e-3, "training did not change the weights: the comparison would prove nothing"
    worst = max((one[k].float() - two[k].float()).abs().max().item() for k in one)
    print(f"moved {moved:.3g}, worst difference {worst:.3g}")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=2e-5, msg=key)


def test_torchrun_trains_an_epoch_and_rank0_alone_writes(data, tmp_path):
    torchrun(['main.py', *run_args(data, tmp_path, 4, '--num_segments', '4', '--epochs', '1', '--npb',
                                   '--lr', '0.01')])
    ckpt = load_checkpoint(str(tmp_path / 'ckpt' / 'run' / 'ckpt.pth.tar'))
    assert ckpt['epoch'] == 1 and ckpt['iteration'] == 0 and ckpt['args']['batch_size'] == 4
    log = (tmp_path / 'log' / 'run' / 'log.csv').read_text()
    assert log.count('Testing Results') == 1 and log.count('Epoch: [0][0/2]') == 1  # 16 videos / (2 x 4)
    assert sorted(os.listdir(tmp_path / 'ckpt' / 'run')) == ['ckpt.best.pth.tar', 'ckpt.pth.tar']
    assert any(name.startswith('events.out.tfevents') for name in os.listdir(tmp_path / 'log' / 'run'))
    assert len([n for n in os.listdir(tmp_path / 'log' / 'run') if n.startswith('events')]) == 1


def test_torchrun_with_skip_keeps_ranks_in_step_when_one_rank_has_no_valid_video(data, tmp_path):
    # batch 1 per rank: the step that gives a rank the bad video leaves that rank nothing to train on; the
    # other rank must skip that step too, or it would wait in backward's all-reduce until the timeout
    bad = tmp_path / 'data'
    shutil.copytree(data, bad)
    first = (bad / 'train_videofolder.txt').read_text().split()[0]
    shutil.rmtree(bad / first)
    torchrun(['main.py', *run_args(bad, tmp_path, 1, '--num_segments', '4', '--epochs', '1', '--npb',
                                   '--on_bad_video', 'skip')], timeout=240)
    log = (tmp_path / 'log' / 'run' / 'log.csv').read_text()
    assert 'Epoch 0: 1 bad videos skipped' in log
    assert 'Epoch 0: 1 good videos left out with the steps' in log
    assert load_checkpoint(str(tmp_path / 'ckpt' / 'run' / 'ckpt.pth.tar'))['epoch'] == 1


def test_torchrun_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(data, tmp_path):
    """2 processes, dropout 0.5: rank 0 SIGKILLed after the checkpoint at iteration 2 of epoch 0 (of 4), torchrun
    stops rank 1; resumed, each rank continues its own random streams (the file holds every rank's)."""
    flags = ['--num_segments', '4', '--npb', '--epochs', '2', '--save_freq', '2', '--dropout', '0.5', '--lr', '0.01']
    torchrun(['main.py', *run_args(data, tmp_path / 'whole', 2, *flags)], timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK')}
    killed = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                               str(ROOT / 'tests' / 'kill_after_save.py'), '0', '2',
                               *run_args(data, tmp_path / 'cut', 2, *flags)], cwd=ROOT,
                              env={**env, 'OMP_NUM_THREADS': '1'}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    try:
        out = killed.communicate(timeout=300)[0]
    finally:  # torchrun's agent and its workers are one process group: none outlives the test
        try:
            os.killpg(killed.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert killed.returncode != 0, out[-3000:]
    ckpt = str(tmp_path / 'cut' / 'ckpt' / 'run' / 'ckpt.pth.tar')
    assert os.path.isfile(ckpt), out[-3000:]  # the killed run got as far as its checkpoint
    saved = load_checkpoint(ckpt)
    assert (saved['epoch'], saved['iteration']) == (0, 2) and len(saved['rng_ranks']) == 2
    torchrun(['main.py', *run_args(data, tmp_path / 'cut', 2, *flags, '--resume', ckpt)], timeout=300)
    whole = load_checkpoint(str(tmp_path / 'whole' / 'ckpt' / 'run' / 'ckpt.pth.tar'))['state_dict']
    again = load_checkpoint(ckpt)
    assert again['epoch'] == 2
    worst = max((again['state_dict'][k].double() - v.double()).abs().max().item() for k, v in whole.items())
    assert worst <= 1e-6, f"weights differ by {worst}"


# ------------------------------------------------------------------------------------------------- units

@pytest.mark.parametrize('n,world', [(10, 3), (16, 2), (5, 2)])
def test_training_sampler_gives_every_rank_equal_shares_of_one_permutation(n, world):
    shares = []
    for rank in range(world):
        sampler = dist_utils.EpochSampler(n, True, seed=7, rank=rank, world=world, pad=True)
        sampler.set_epoch(3)
        shares.append(list(sampler))
    assert len({len(s) for s in shares}) == 1  # DDP needs the same number of steps on every rank
    assert set().union(*shares) == set(range(n)) and sum(map(len, shares)) - n < world


def test_validation_sampler_gives_each_video_to_exactly_one_rank():
    shares = [list(dist_utils.EpochSampler(7, False, 0, rank, 3, pad=False)) for rank in range(3)]
    assert sorted(sum(shares, [])) == list(range(7)) and [len(s) for s in shares] == [3, 2, 2]


def test_sampler_reshuffles_per_epoch_and_skips_on_resume():
    sampler = dist_utils.EpochSampler(12, True, seed=0, rank=1, world=2)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0, skip=4)
    assert list(sampler) == first[4:] and len(sampler) == 2


def test_sync_bn_keeps_partial_bn_and_the_optimizer_parameters():
    model = TSN(4, 4, 'RGB', base_model='resnet18', pretrain='scratch', is_shift=True, partial_bn=True)
    params = {id(p) for p in model.parameters()}
    dist_utils.convert_sync_batchnorm(model)
    bns = [m for m in model.base_model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(isinstance(m, nn.SyncBatchNorm) for m in bns)
    assert {id(p) for p in model.parameters()} == params and model.state_dict().keys() == TSN(
        4, 4, 'RGB', base_model='resnet18', pretrain='scratch', is_shift=True).state_dict().keys()
    model.train()
    assert bns[0].training and not any(m.training for m in bns[1:])
    with pytest.raises(ValueError, match='CUDA'):
        dist_utils.wrap_model(model, torch.device('cpu'), sync_bn=True)


def test_torchrun_trains_a_clip_backbone_clustered_epoch(data, tmp_path):
    """r3d_18 (a 3D CNN, no shift) under 2 gloo processes: 8 frames through the stem and layer1, clustered into 4."""
    argv = [a for a in run_args(data, tmp_path, 4, '--arch', 'r3d_18', '--cluster', 'cumulative', '--frames', '8',
                                '--num_segments', '4', '--epochs', '1', '--npb', '--lr', '0.01') if a != '--shift']
    torchrun(['main.py', *argv], timeout=240)
    ckpt = load_checkpoint(str(tmp_path / 'ckpt' / 'run' / 'ckpt.pth.tar'))
    assert ckpt['epoch'] == 1 and ckpt['args']['arch'] == 'r3d_18'
    log = (tmp_path / 'log' / 'run' / 'log.csv').read_text()
    assert log.count('Testing Results') == 1 and log.count('Epoch: [0][0/2]') == 1  # 16 videos / (2 x 4)


def _worker(out_dir: str, argv: List[str]) -> None:
    """torchrun worker of the equality test: hooks, then main.py's main; rank r writes rank{r}.json."""
    losses: List[float] = []
    deterministic_hooks(setattr, losses)
    rank = int(os.environ.get('RANK', 0))
    result: Dict = train_main.main(argv)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump({'train_loss': losses, 'result': result}, f)


if __name__ == '__main__':
    _worker(sys.argv[1], sys.argv[2:])
