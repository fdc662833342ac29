"""Several machines, simulated on one (CPU, gloo, localhost): two torchrun launchers with ``--nnodes 2``
train like one process with the same global batch; a killed worker restarts the group (``--max_restarts``)
and ``--resume auto`` finishes the run with the figures of an uninterrupted one; bad videos keep the ranks in
step; a --root_model folder that a node cannot see is a clear error; scripts/train_slurm.sh.

Run as a script (``torchrun ... tests/test_multinode.py OUT_DIR MAIN_ARGS...``) this file is the worker: the
deterministic hooks of tests/test_distributed.py, an optional self-kill (``KILL_AT_STEP``, once per test,
marked by a file in OUT_DIR), then ``main.main``. ``... test_multinode.py --join TAG`` joins a process group
(``ops.distributed.init_from_env``; torch's plain init with ``PLAIN_INIT=1``, which shows the hang) and
all-reduces once.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / 'tests'):  # run as a torchrun worker script
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import main as train_main  # noqa: E402
from ops.checkpoint import load_checkpoint  # noqa: E402
from test_distributed import deterministic_hooks  # noqa: E402

# 16 training videos, 2 per rank and step: 4 steps of a global batch of 4 per epoch
FLAGS = ['--cluster', 'cumulative', '--frames', '8', '--num_segments', '4', '--dropout', '0', '--lr', '0.02',
         '--epochs', '1', '--resume', 'auto']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_args(data: Path, out: Path, batch: int, *extra: str, root_model: Optional[str] = None) -> List[str]:
    return ['move4mnist', 'RGB', '--root_path', str(data), '--arch', 'resnet18', '--img_size', '32',
            '--scale_size', '32', '--pretrain', 'scratch', '--shift', '--device', 'cpu', '-j', '0', '-b', str(batch),
            '--root_log', str(out / 'log'), '--root_model', root_model or str(out / 'ckpt'), '--store_name', 'run',
            *extra]


def launch(torchrun_flags: List[str], worker_args: List[str], cwd: Path = ROOT,
           env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """One torchrun launcher (a simulated node), in a session of its own so that a timeout can end it all."""
    base = {k: v for k, v in os.environ.items() if k not in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_PORT')}
    base.update({'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1', **(env or {})})
    return subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', *torchrun_flags, *worker_args],
                            cwd=cwd, env=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(procs: List[subprocess.Popen], timeout: float) -> List[subprocess.CompletedProcess]:
    """Wait for every launcher at most ``timeout`` seconds in all, then end what is left (by its session)."""
    deadline, done = time.monotonic() + timeout, []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            for other in procs:
                if other.poll() is None:
                    os.killpg(other.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail(f'a launcher was still running after {timeout} s (a hang):\n{out[-4000:]}')
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, ''))
    return done


def two_nodes(extra_torchrun: List[str], worker_args: List[str], static: bool = True, timeout: float = 420,
              cwds: Optional[List[Path]] = None, env: Optional[Dict[str, str]] = None
              ) -> List[subprocess.CompletedProcess]:
    """Two launchers with ``--nnodes 2 --nproc_per_node 1``: static (``--node_rank``, ``--master_addr``) or
    c10d rendezvous (the same command on both nodes)."""
    port = free_port()
    procs = []
    for node in (0, 1):
        if static:
            flags = ['--node_rank', str(node), '--master_addr', '127.0.0.1', '--master_port', str(port)]
        else:
            flags = ['--rdzv_backend', 'c10d', '--rdzv_endpoint', f'127.0.0.1:{port}', '--rdzv_id', 'job']
        procs.append(launch(['--nnodes', '2', '--nproc_per_node', '1', *flags, *extra_torchrun], worker_args,
                            cwd=(cwds or [ROOT, ROOT])[node], env=env))
    return finish(procs, timeout)


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    from tools.make_move4mnist import main as make_move4mnist
    out = tmp_path_factory.mktemp('move4mnist')
    make_move4mnist(['--out', str(out), '--num_train', '16', '--num_val', '5', '--seed', '0'])
    return out


@pytest.fixture(scope='module')
def reference(data, tmp_path_factory) -> Dict:
    """One process, global batch 4, the deterministic hooks: its result, weights and printed lines."""
    out = tmp_path_factory.mktemp('one')
    with pytest.MonkeyPatch.context() as mp:
        deterministic_hooks(mp.setattr, [])
        printed: List[str] = []
        mp.setattr('builtins.print', lambda *a, **k: printed.append(' '.join(map(str, a))))
        result = train_main.main(run_args(data, out, 4, *FLAGS))
    weights = load_checkpoint(str(out / 'ckpt' / 'run' / 'ckpt.pth.tar'))['state_dict']
    return {'result': result, 'weights': weights, 'printed': '\n'.join(printed)}


def assert_same_run(out: Path, reference: Dict) -> None:
    """Each rank's validation (5 videos, once each) and rank 0's final weights equal the single process's."""
    for rank in (0, 1):
        result = json.loads((out / f'rank{rank}.json').read_text())['result']
        assert result['count'] == 5
        assert result['loss'] == pytest.approx(reference['result']['loss'], rel=1e-5)
        assert result['top1'] == reference['result']['top1']
    weights = load_checkpoint(str(out / 'ckpt' / 'run' / 'ckpt.pth.tar'))['state_dict']
    assert set(weights) == set(reference['weights'])
    for key, value in reference['weights'].items():
        torch.testing.assert_close(weights[key], value, rtol=1e-4, atol=2e-5, msg=key)


def test_resume_auto_starts_afresh_without_a_checkpoint(reference):
    assert '=> --resume auto: starting afresh, no ' in reference['printed']
    assert 'resuming from' not in reference['printed']


def test_evaluate_with_resume_auto_and_no_checkpoint_is_an_error(data, tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint to evaluate'):
        train_main.main(run_args(data, tmp_path, 4, '--evaluate', '--resume', 'auto'))


def test_two_static_nodes_train_like_one_process(data, tmp_path, reference):
    done = two_nodes([], [__file__, str(tmp_path), *run_args(data, tmp_path, 2, *FLAGS)])
    assert all(p.returncode == 0 for p in done), done[0].stdout[-3000:] + done[1].stdout[-3000:]
    assert_same_run(tmp_path, reference)
    log = (tmp_path / 'log' / 'run' / 'log.csv').read_text()  # rank 0 alone writes: one line per step
    assert log.count('Epoch: [0][0/4]') == 1 and log.count('Testing Results') == 1


def test_killed_worker_restarts_the_group_which_resumes_and_finishes_like_an_uninterrupted_run(
        data, tmp_path, reference):
    # rank 1 kills itself (SIGKILL) as its third step starts; rank 0 checkpoints after every step; torchrun
    # restarts both nodes' workers, which join a fresh process-group store and resume from the checkpoint
    done = two_nodes(['--max_restarts', '1'],
                     [__file__, str(tmp_path), *run_args(data, tmp_path, 2, *FLAGS, '--save_freq', '1')],
                     static=False, env={'KILL_AT_STEP': '1:3'})
    text = done[0].stdout + done[1].stdout
    assert all(p.returncode == 0 for p in done), text[-6000:]
    assert (tmp_path / 'killed').exists(), 'the worker was not killed: the test would prove nothing'
    assert '=> --resume auto: resuming from' in text
    assert re.search(r'=> loaded \S+ \(epoch 0, iteration [12]\)', text), text[-6000:]  # mid-epoch
    assert_same_run(tmp_path, reference)


def test_bad_video_on_one_node_keeps_the_ranks_in_step(data, tmp_path):
    import shutil
    bad = tmp_path / 'data'
    shutil.copytree(data, bad)
    first = (bad / 'train_videofolder.txt').read_text().split()[0]
    shutil.rmtree(bad / first)  # batch 1: the step that gives one rank this video leaves it nothing to train on
    done = two_nodes([], ['main.py', *run_args(bad, tmp_path, 1, '--num_segments', '4', '--epochs', '1', '--npb',
                                               '--on_bad_video', 'skip')])
    assert all(p.returncode == 0 for p in done), done[0].stdout[-3000:] + done[1].stdout[-3000:]
    log = (tmp_path / 'log' / 'run' / 'log.csv').read_text()
    assert 'Epoch 0: 1 bad videos skipped' in log and 'Epoch 0: 1 good videos left out with the steps' in log
    assert load_checkpoint(str(tmp_path / 'ckpt' / 'run' / 'ckpt.pth.tar'))['epoch'] == 1


def test_a_root_model_folder_that_a_node_cannot_see_is_a_clear_error(data, tmp_path):
    # the same relative --root_model on both nodes, but each node's working folder is its own: node 0 sees a
    # checkpoint, node 1 sees nothing (as with a local disk per machine)
    nodes = [tmp_path / 'node0', tmp_path / 'node1']
    for node in nodes:
        node.mkdir()
    (nodes[0] / 'ckpt' / 'run').mkdir(parents=True)
    (nodes[0] / 'ckpt' / 'run' / 'ckpt.pth.tar').write_bytes(b'rank 1 must not get as far as reading this')
    args = run_args(data, tmp_path, 2, '--num_segments', '4', '--resume', 'auto', root_model='ckpt')
    done = two_nodes([], [str(ROOT / 'main.py'), *args], cwds=nodes, timeout=120)
    for node in done:
        assert node.returncode != 0
        assert 'found this checkpoint, but rank 1 on' in node.stdout and 'cannot see it' in node.stdout, \
            node.stdout[-3000:]


def test_lists_that_differ_between_nodes_are_a_clear_error(data, tmp_path):
    import shutil
    other = tmp_path / 'data'
    shutil.copytree(data, other)
    lines = (other / 'val_videofolder.txt').read_text().splitlines()
    (other / 'val_videofolder.txt').write_text('\n'.join(lines[:-1]) + '\n')
    (tmp_path / 'node0').mkdir()
    (tmp_path / 'node1').mkdir()
    (tmp_path / 'node0' / 'data').symlink_to(data)
    (tmp_path / 'node1' / 'data').symlink_to(other)
    args = run_args(Path('data'), tmp_path, 2, '--num_segments', '4')
    done = two_nodes([], [str(ROOT / 'main.py'), *args], cwds=[tmp_path / 'node0', tmp_path / 'node1'],
                     timeout=120)
    for node in done:
        assert node.returncode != 0 and 'val_videofolder.txt differs between rank 0 on' in node.stdout, \
            node.stdout[-3000:]


# ----------------------------------------------------------- the cause of the hang after a restart

def _join_attempt(port: int, folder: Path, plain: bool) -> List[Optional[int]]:
    """Two processes join a group through an agent-like store at ``port`` (``TORCHELASTIC_USE_AGENT_STORE``)
    and all-reduce once; rank 0 starts joining 2 s after rank 1 has. Their exit codes (None: still running
    after 240 s, ended then)."""
    folder.mkdir()
    procs = []
    for rank in (0, 1):
        env = {**os.environ, 'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port), 'RANK': str(rank),
               'LOCAL_RANK': str(rank), 'WORLD_SIZE': '2', 'TORCHELASTIC_USE_AGENT_STORE': 'True',
               'OMP_NUM_THREADS': '1', 'JOIN_FOLDER': str(folder), 'PLAIN_INIT': '1' if plain else '0'}
        procs.append(subprocess.Popen([sys.executable, __file__, '--join'], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True))
    codes: List[Optional[int]] = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=240)
            codes.append(proc.returncode)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            codes.append(None)
        print(out[-2000:])
        if codes[-1] == 0:
            assert 'sum 3.0' in out
    return codes


def test_a_restarted_group_ignores_the_keys_of_the_killed_attempt(tmp_path):
    """torchrun keeps its store across restarts, and the first attempt's keys stay in it: with torch's plain
    init, gloo's listening addresses; with init_from_env, the address of rank 0's process-group store. In the
    second attempt rank 1 joins first and reads what the first attempt's rank 0 left. torch's plain init
    (``PLAIN_INIT=1``) connects to the dead process and fails or waits until its timeout (the elastic-restart
    hang); init_from_env finds that store dead and waits for the new rank 0's."""
    agent = torch.distributed.TCPStore('127.0.0.1', 0, 2, is_master=True, wait_for_workers=False,
                                       timeout=timedelta(seconds=60))
    plain = os.environ.get('PLAIN_INIT') == '1'
    assert _join_attempt(agent.port, tmp_path / 'first', plain) == [0, 0]
    assert _join_attempt(agent.port, tmp_path / 'second', plain) == [0, 0]


# --------------------------------------------------------------------------------------- SLURM script

def test_slurm_script_derives_the_torchrun_command_from_the_allocation(tmp_path):
    script = ROOT / 'scripts' / 'train_slurm.sh'
    assert subprocess.run(['bash', '-n', str(script)]).returncode == 0
    stubs = tmp_path / 'bin'
    stubs.mkdir()
    (stubs / 'srun').write_text('#!/bin/sh\necho "srun $*"\n')
    (stubs / 'scontrol').write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostnames gpu[07-08]" ] || exit 3\n'
                                    'printf "gpu07\\ngpu08\\n"\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = {'PATH': f"{stubs}{os.pathsep}{os.environ['PATH']}", 'SLURM_JOB_ID': '4242', 'SLURM_NNODES': '2',
           'SLURM_JOB_NODELIST': 'gpu[07-08]', 'SLURM_GPUS_ON_NODE': '4', 'SLURM_SUBMIT_DIR': str(ROOT)}
    proc = subprocess.run(['bash', str(script), 'something', 'RGB', '--arch', 'resnet50', '--resume', 'x.pth'],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        'srun torchrun --nnodes 2 --nproc_per_node 4 --max_restarts 3 --rdzv_backend c10d --rdzv_endpoint '
        'gpu07:29500 --rdzv_id 4242 main.py something RGB --arch resnet50 --resume x.pth --resume auto')
    missing = subprocess.run(['bash', str(script)], env={'PATH': env['PATH']}, capture_output=True, text=True)
    assert missing.returncode != 0 and 'run me with sbatch' in missing.stderr


# ------------------------------------------------------------------------------------- worker scripts

def _worker(out_dir: str, argv: List[str]) -> None:
    """torchrun worker: deterministic hooks, the optional self-kill, main.py; rank r writes rank{r}.json."""
    deterministic_hooks(setattr, [])
    rank = int(os.environ.get('RANK', 0))
    marker = os.path.join(out_dir, 'killed')
    if os.environ.get('KILL_AT_STEP') and not os.path.exists(marker):
        kill_rank, kill_step = (int(v) for v in os.environ['KILL_AT_STEP'].split(':'))
        original, calls = train_main.to_device, [0]

        def to_device(*args, **kwargs):  # called once per training batch
            calls[0] += 1
            if rank == kill_rank and calls[0] == kill_step:
                open(marker, 'w').close()
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        train_main.to_device = to_device
    result = train_main.main(argv)
    with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
        json.dump({'result': result}, f)


def _join() -> None:
    """Join a group as the environment says and all-reduce 1 + rank once (prints ``sum 3.0``); rank 0 starts
    joining 2 s after rank 1 has (``JOIN_FOLDER/rank1``)."""
    import torch.distributed as dist
    from ops import distributed as dist_utils
    folder = Path(os.environ['JOIN_FOLDER'])
    rank = int(os.environ['RANK'])
    if rank == 0:
        deadline = time.monotonic() + 100
        while not (folder / 'rank1').exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
    else:
        (folder / 'rank1').touch()
    if os.environ['PLAIN_INIT'] == '1':
        dist.init_process_group('gloo', timeout=timedelta(seconds=20))
    else:
        dist_utils.init_from_env('cpu', join_timeout_s=60)
    t = torch.tensor([1.0 + dist.get_rank()])
    dist.all_reduce(t)
    print(f'sum {t.item()}', flush=True)
    # end as main.py does (barrier, then destroy): a process that exits with its group alive can abort in
    # teardown ("terminate called without an active exception", exit -6) while the other rank still talks to it
    dist_utils.cleanup()


if __name__ == '__main__':
    if sys.argv[1] == '--join':
        _join()
    else:
        _worker(sys.argv[1], sys.argv[2:])
