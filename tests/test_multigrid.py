"""ops/multigrid.py: the multigrid schedule (Wu et al. 2020) against values worked out by hand from the paper's
factors (long cycle (T/4, S/sqrt2), (T/2, S/sqrt2), (T/2, S), (T, S); short cycle S/2, S/sqrt2, S), its cost per
step, its learning rates, the short cycle's batches; --multigrid end to end through main.py (x3d_xs, TSM,
cumulative clustering), with resumes that end where the uninterrupted runs do."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import main as train_main
import opts
from builder import adjust_learning_rate, build_optimizer, build_model, multigrid_args, multigrid_phases, store_name
from ops import multigrid as mg
from ops.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
S2 = 2 ** -0.5


def test_long_cycle_shapes_by_hand():
    # T=8, S=32: T/4 = 2, 32/sqrt2 = 22.6 -> 23; batch 8*32^2 / (2*23^2) = 7.74 -> 8, / (4*23^2) = 3.87 -> 4, ...
    assert mg.long_cycle_shapes(8, 32) == [mg.Shape(8, 2, 23), mg.Shape(4, 4, 23), mg.Shape(2, 4, 32),
                                           mg.Shape(1, 8, 32)]
    # the paper's Kinetics setting, T=16 at 224: 224/sqrt2 = 158.4 -> 158; 16*224^2 / (4*158^2) = 8.04 -> 8
    assert mg.long_cycle_shapes(16, 224) == [mg.Shape(8, 4, 158), mg.Shape(4, 8, 158), mg.Shape(2, 8, 224),
                                             mg.Shape(1, 16, 224)]


def test_a_frame_share_below_one_gives_the_clustered_batches_by_hand():
    # share 0.5, T=32 -> 8 frames at 23 px: (23/32)^2 (0.5 * 8/32 + 0.5) = 0.3229 -> batch 3.10 -> 3 (T S^2: 8)
    assert mg.grid_shape(32, 32, 0.25, S2, 0.5) == mg.Shape(3, 8, 23)
    assert mg.grid_shape(32, 32, 0.25, S2) == mg.Shape(8, 8, 23)
    assert mg.grid_shape(32, 32, 0.5, 1.0, 0.0) == mg.Shape(1, 16, 32)  # nothing grows with F: no larger batch


def test_clustered_long_cycle_keeps_the_measured_step_cost_about_constant():
    """The batch multiples from the measured frame share keep batch x clip cost within the rounding of a whole
    multiple (x0.67-1.5) of the base step's, each cost counted by torch's FLOP counter (shapes only, on the meta
    device, at 112 px where S^2 describes the spatial cost); B T S^2 overshoots (G is fixed)."""
    from torch.utils.flop_counter import FlopCounterMode
    args = args_of('--arch', 'resnet18', '--shift', '--cluster', 'cumulative', '--frames', '32', '--num_segments',
                   '8', '--multigrid', 'long', '--epochs', '8', '--img_size', '112')
    model = build_model(args, 4, print_spec=False).eval()
    meta = build_model(args, 4, print_spec=False).eval().to('meta')

    def cost(frames, size):
        with torch.no_grad(), meta.sampled_frames(frames), FlopCounterMode(display=False) as counter:
            meta(torch.zeros(1, frames * 3, size, size, device='meta'))
        return counter.get_total_flops()

    share = mg.frame_share(model, 32, 112, 3, torch.device('cpu'))
    assert 0.4 < share < 0.9, share  # the stem and layer1 on 32 frames, layer2-4 on 8
    base = cost(32, 112)
    assert cost(16, 112) == pytest.approx(base * (1 - share / 2), rel=1e-6)  # linear in F: the share's definition
    shapes, naive = mg.long_cycle_shapes(32, 112, share), mg.long_cycle_shapes(32, 112)
    assert [s.batch for s in shapes] == [4, 3, 1, 1] and [s.batch for s in naive] == [8, 4, 2, 1]
    for shape in shapes:
        ratio = shape.batch * cost(shape.frames, shape.size) / base
        assert 0.67 < ratio < 1.5, (shape, ratio)
    assert naive[0].batch * cost(naive[0].frames, naive[0].size) / base > 2.0  # what the T S^2 rule gave
    args.multigrid_frame_share = share
    assert [p.shape for p in multigrid_phases(args)] == shapes
    assert model.training is False and next(model.parameters()).device.type == 'cpu'  # untouched


def test_short_cycle_by_hand():
    assert mg.short_cycle(32, 32) == [(4, 16), (2, 23), (1, 32)]  # S/2 with 4x the batch, S/sqrt2 with 2x
    assert mg.short_cycle(23, 32) == [(2, 16), (1, 23), (1, 23)]  # in the S/sqrt2 phase: (23/16)^2 = 2.07 -> 2
    assert mg.short_cycle(224, 224) == [(4, 112), (2, 158), (1, 224)]


def test_long_schedule_phases_and_learning_rates():
    # one stage of 15 epochs, phases in proportion to their batches 8:4:2:1 (each about as many steps)
    phases = mg.schedule(15, 8, 32, long=True, short=False)
    assert [(p.start, p.end) for p in phases] == [(0, 8), (8, 12), (12, 14), (14, 15)]
    assert [mg.lr_factor(p) for p in phases] == [8.0, 4.0, 2.0, 1.0]
    assert phases[-1].shape == mg.Shape(1, 8, 32) and all(p.cycle == ((1, p.shape.size),) for p in phases)
    # lr steps at 20 and 40 of 50: a cycle in [0, 20) and [20, 40) (20*8/15 = 10.7 -> 11, 16, 18.7 -> 19, 20),
    # the last stage at the base shape
    phases = mg.schedule(50, 8, 32, long=True, short=False, stage_starts=[20, 40])
    assert [(p.start, p.end, p.shape.batch) for p in phases] == [
        (0, 11, 8), (11, 16, 4), (16, 19, 2), (19, 20, 1), (20, 31, 8), (31, 36, 4), (36, 39, 2), (39, 40, 1),
        (40, 50, 1)]


def test_long_and_short_schedule():
    # mean batches of a phase's three iterations: 8*(2+1+1)/3, 4*(2+1+1)/3, 2*(4+2+1)/3, 1*(4+2+1)/3
    # = 32/3 : 16/3 : 14/3 : 7/3, so 69 epochs split 32, 16, 14, 7
    phases = mg.schedule(69, 8, 32, long=True, short=True)
    assert [p.end - p.start for p in phases] == [32, 16, 14, 7]
    assert [mg.iteration_batches(p, 2) for p in phases] == [[32, 16, 16], [16, 8, 8], [16, 8, 4], [8, 4, 2]]
    assert [mg.iteration_sizes(p) for p in phases] == [[16, 23, 23], [16, 23, 23], [16, 23, 32], [16, 23, 32]]
    assert [mg.lr_factor(p) for p in phases] == [8.0, 4.0, 2.0, 1.0]  # the short cycle keeps the phase's rate


def test_short_schedule_alone():
    (phase,) = mg.schedule(3, 8, 32, long=False, short=True)
    assert (phase.start, phase.end, phase.shape) == (0, 3, mg.Shape(1, 8, 32))
    assert mg.iteration_batches(phase, 4) == [16, 8, 4] and mg.iteration_sizes(phase) == [16, 23, 32]
    assert mg.lr_factor(phase) == 1.0


@pytest.mark.parametrize('frames,size', [(8, 32), (16, 224), (32, 256), (4, 182)])
def test_every_step_costs_about_the_base_step(frames, size):
    base = mg.step_cost(1, frames, size)
    for phase in mg.schedule(30, frames, size, long=True, short=True):
        for batch, crop in zip(mg.iteration_batches(phase, 1), mg.iteration_sizes(phase)):
            assert 0.8 < mg.step_cost(batch, phase.shape.frames, crop) / base < 1.25, (phase, batch, crop)


def test_few_epochs_keep_the_finest_phases():
    assert mg.apportion(4, [8, 4, 2, 1]) == [1, 1, 1, 1]
    assert mg.apportion(6, [8, 4, 2, 1]) == [3, 1, 1, 1]  # 3.2, 4.8, 5.6 -> 3, 5, 6: the last phase kept
    assert mg.apportion(2, [8, 4, 2, 1]) == [0, 0, 1, 1]
    assert mg.phase_at(mg.schedule(2, 8, 32, True, False), 0).shape == mg.Shape(2, 4, 32)


def test_cycle_batch_sampler_and_resume_offsets():
    sampler = list(range(20))
    batches = list(mg.CycleBatchSampler(sampler, [4, 2, 1]))
    assert [len(b) for b in batches] == [4, 2, 1, 4, 2, 1, 4, 2] and sum(batches, []) == sampler
    assert len(mg.CycleBatchSampler(sampler, [4, 2, 1])) == 8
    assert mg.videos_before(2, [4, 2, 1]) == 6
    resumed = mg.CycleBatchSampler(sampler[6:], [4, 2, 1], start=2)  # batch 2 onwards: 1, 4, 2, 1, 4, 2
    assert [len(b) for b in resumed] == [1, 4, 2, 1, 4, 2] and len(resumed) == 6


def test_resize_frames():
    x = torch.randn(2, 4 * 3, 32, 32)
    assert mg.resize_frames(x, 32) is x
    assert mg.resize_frames(x, 16).shape == (2, 12, 16, 16)
    assert torch.allclose(mg.resize_frames(torch.ones(1, 3, 32, 32), 23), torch.ones(1, 3, 23, 23))


def args_of(*extra: str):
    return opts.parse_args(['move4mnist', 'RGB', '--pretrain', 'scratch', '--img_size', '32', '-b', '2', *extra])


def test_learning_rate_follows_the_batch():
    args = args_of('--arch', 'resnet18', '--num_segments', '8', '--multigrid', 'long', '--epochs', '15',
                   '--lr', '0.1', '--lr_steps', '100')
    optimizer = build_optimizer(args, build_model(args, 4, print_spec=False))
    assert [adjust_learning_rate(optimizer, args, e) for e in (0, 7, 8, 12, 14)] == pytest.approx(
        [0.8, 0.8, 0.4, 0.2, 0.1])
    plain = args_of('--arch', 'resnet18', '--epochs', '15', '--lr', '0.1', '--lr_steps', '100')
    assert adjust_learning_rate(optimizer, plain, 0) == 0.1 and multigrid_phases(plain) is None
    assert store_name(args) == store_name(plain) + '_mglong'
    # --multigrid_lr: sqrt (AdamW's usual rule) and none, against the batch multiples 8, 4, 2, 1
    for rule, expected in (('sqrt', [0.1 * 8 ** 0.5, 0.2, 0.1 * 2 ** 0.5, 0.1]), ('none', [0.1] * 4)):
        args.multigrid_lr = rule
        assert [adjust_learning_rate(optimizer, args, e) for e in (0, 8, 12, 14)] == pytest.approx(expected)
    with pytest.raises(ValueError, match="rule 'cubic'"):
        mg.lr_factor(multigrid_phases(args)[0], 'cubic')


def test_phase_arguments_per_model_kind():
    clip = args_of('--arch', 'x3d_xs', '--num_segments', '8', '--multigrid', 'long', '--epochs', '4')
    first = multigrid_args(clip, multigrid_phases(clip)[0])  # T/4 frames at 4x the stride: the same span
    assert (first.num_segments, first.sample_rate, first.img_size, first.batch_size) == (2, 4, 23, 16)
    assert (clip.num_segments, clip.sample_rate, clip.img_size, clip.batch_size) == (8, 1, 32, 2)  # a copy
    tsm = args_of('--arch', 'resnet18', '--shift', '--num_segments', '8', '--multigrid', 'long', '--epochs', '4')
    assert multigrid_args(tsm, multigrid_phases(tsm)[1]).num_segments == 4
    clustered = args_of('--arch', 'resnet18', '--cluster', 'cumulative', '--num_segments', '4', '--frames', '16',
                        '--multigrid', 'long', '--epochs', '4')
    phase = multigrid_args(clustered, multigrid_phases(clustered)[0])
    assert (phase.frames, phase.num_segments) == (4, 4)  # F varies, G stays


@pytest.mark.parametrize('extra,message', [
    (['--arch', 'resnet18', '--cluster', 'cumulative', '--frames', 'all'], 'no F to vary'),
    (['--arch', 'resnet18', '--cluster', 'cumulative', '--num_segments', '8', '--frames', '16'], 'at least 32'),
    (['--arch', 'slowfast_r50', '--num_segments', '8'], 'multiples of alpha 4'),
    (['--arch', 'resnet18', '--shift', '--temporal_pool', '--num_segments', '6'], 'must all be even'),
    (['--arch', 'c3d', '--num_segments', '16'], 'fixed clip shape'),
])
def test_refused_combinations(extra, message, capsys):
    with pytest.raises(SystemExit):
        args_of(*extra, '--multigrid', 'long')
    assert message in capsys.readouterr().err


def test_a_shape_the_network_cannot_take_stops_before_training():
    """I3D-ResNet-50 strides time by 4 in its stem and 2 at stage 2: T = 8 gives the long cycle's first phase 2
    frames, too short (as is 4); T = 32 (8 frames) passes."""
    args = args_of('--arch', 'i3d_resnet50', '--num_segments', '8', '--multigrid', 'long', '--epochs', '4')
    model = build_model(args, 4, print_spec=False)
    with pytest.raises(ValueError, match='i3d_resnet50 cannot take 2 frames at 23x23 px'):
        mg.check_shapes(model, multigrid_phases(args), model.sample_len, torch.device('cpu'))
    assert model.training and model.num_segments == 8
    args = args_of('--arch', 'i3d_resnet50', '--num_segments', '32', '--multigrid', 'long', '--epochs', '4')
    mg.check_shapes(model, multigrid_phases(args), model.sample_len, torch.device('cpu'))


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    from tools.make_move4mnist import main as make_move4mnist
    out = tmp_path_factory.mktemp('move4mnist')
    make_move4mnist(['--out', str(out), '--num_train', '8', '--num_val', '4', '--seed', '0'])
    return out


def run_args(data: Path, out: Path, *extra: str):
    return ['move4mnist', 'RGB', '--root_path', str(data), '-b', '1', '-j', '0', '--img_size', '32',
            '--scale_size', '36', '--pretrain', 'scratch', '--npb', '--device', 'cpu', '--lr', '0.01',
            '--eval-freq', '1', '--epochs', '4', '--root_log', str(out / 'log'), '--root_model', str(out / 'ckpt'),
            '--store_name', 'run', '--seed', '1', *extra]


def killed_then_resumed(data: Path, tmp_path: Path, flags, at):
    """The uninterrupted run and one SIGKILLed after its checkpoint ``at`` (epoch, iteration), then resumed: both
    final checkpoints."""
    whole, killed = tmp_path / 'whole', tmp_path / 'killed'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the killed subprocess: another thread count sums in another order (CI has 2 cores)
    try:
        train_main.main(run_args(data, whole, *flags))
        env = {**os.environ, 'OMP_NUM_THREADS': '1'}
        done = subprocess.run([sys.executable, str(ROOT / 'tests' / 'kill_after_save.py'), *map(str, at),
                               *run_args(data, killed, *flags)], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode != 0, done.stderr[-2000:]  # killed
        ckpt = killed / 'ckpt' / 'run' / 'ckpt.pth.tar'
        assert (load_checkpoint(str(ckpt))['epoch'], load_checkpoint(str(ckpt))['iteration']) == at
        train_main.main(run_args(data, killed, *flags, '--resume', str(ckpt)))
    finally:
        torch.set_num_threads(threads)
    return [load_checkpoint(str(f / 'ckpt' / 'run' / 'ckpt.pth.tar')) for f in (whole, killed)]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_x3d_long_cycle_trains_and_resumes(data, tmp_path):
    """The issue's check: --arch x3d_xs --num_segments 8 --multigrid long; killed after epoch 2, resumed."""
    whole, resumed = killed_then_resumed(data, tmp_path, ['--arch', 'x3d_xs', '--num_segments', '8',
                                                          '--multigrid', 'long'], (2, 0))
    log = (tmp_path / 'whole' / 'log' / 'run' / 'log.csv').read_text()
    for line in ('epochs 0-0: batch 8, 2 frames, 23px, lr x8', 'epochs 3-3: batch 1, 8 frames, 32px, lr x1'):
        assert line in log
    assert 'Epoch: [0][0/1], lr: 0.08000' in log and 'Epoch: [3][0/8], lr: 0.01000' in log
    assert whole['epoch'] == resumed['epoch'] == 4 and same_weights(whole['state_dict'], resumed['state_dict'])


def test_tsm_long_short_cycle_resumes_inside_an_epoch(data, tmp_path):
    """TSM-8 ResNet-18 with --multigrid long,short, killed inside the last epoch (batches 4, 2, 1, 1 of 4x, 2x, 1x
    the batch at 16, 23, 32 px) after its second batch: the resumed run continues the short cycle exactly."""
    flags = ['--arch', 'resnet18', '--shift', '--num_segments', '8', '--multigrid', 'long,short', '--save_freq', '2']
    whole, resumed = killed_then_resumed(data, tmp_path, flags, (3, 2))
    log = (tmp_path / 'whole' / 'log' / 'run' / 'log.csv').read_text()
    assert 'epochs 3-3: batch 1, 8 frames, 32px, lr x1, short cycle 4x16px 2x23px 1x32px' in log
    assert 'Epoch: [3][0/4]' in log
    assert same_weights(whole['state_dict'], resumed['state_dict'])


def test_cumulative_clustering_long_cycle(data, tmp_path):
    """ours-cumulative: F = 4, 8, 8, 16 frames enter the stem over the long cycle, G = 4 clusters throughout, the
    batches from the measured share of the cost that grows with F."""
    result = train_main.main(run_args(data, tmp_path, '--arch', 'resnet18', '--shift', '--cluster', 'cumulative',
                                      '--num_segments', '4', '--frames', '16', '--multigrid', 'long'))
    log = (tmp_path / 'log' / 'run' / 'log.csv').read_text()
    # 65% of the clip's cost at F = 16, 32 px grows with F (stem, layer1 and the clustering); by hand: phase 0,
    # (23/32)^2 (0.65 x 4/16 + 0.35) = 0.265 -> batch 4 (B F S^2 would give 8), phase 1 0.349 -> 3
    assert "65% of a clip's cost grows with its frames" in log
    assert 'epochs 0-0: batch 4, 4 frames, 23px, lr x4' in log and 'epochs 1-1: batch 3, 8 frames, 23px' in log
    assert 'epochs 3-3: batch 1, 16 frames, 32px' in log
    assert log.count('Testing Results') == 4 and 0 <= result['top1'] <= 100


# ------------------------------------------------------------------------------------- sub-batch BatchNorm
def test_bn_sub_batches_counts_base_batches():
    assert [mg.bn_sub_batches(n, 2) for n in (1, 2, 4, 8, 6, 7, 16)] == [1, 1, 2, 4, 3, 1, 8]
    assert mg.bn_sub_batches(12, 4) == 3 and mg.bn_sub_batches(10, 4) == 2  # 10: 2 base batches, 2 divides 10


def test_sub_batch_norm_is_batchnorm_on_each_sub_batch_apart():
    """3 sub-batches of 2 clips of (N, C, T, H, W): each normalised as a BatchNorm in training mode would normalise
    it alone; the running statistics move by the sub-batches' mean statistics; frozen layers and the forward
    outside the block are untouched."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.BatchNorm3d(4), torch.nn.BatchNorm3d(4))
    net[0].weight.data.uniform_(0.5, 1.5)
    net[0].bias.data.uniform_(-0.5, 0.5)
    net[1].eval()  # partial BN's frozen layer
    x = torch.randn(6, 4, 2, 3, 3) * 3 + 1
    reference = copy.deepcopy(net[0])
    with mg.sub_batch_norm(net, 3):
        y = net[0](x)
        assert 'forward' not in vars(net[1])
    assert 'forward' not in vars(net[0])
    for g in range(3):
        alone = copy.deepcopy(reference)
        torch.testing.assert_close(y[2 * g:2 * g + 2], alone(x[2 * g:2 * g + 2]), rtol=1e-5, atol=1e-5)
    groups = x.reshape(3, 2, 4, -1).transpose(1, 2).reshape(3, 4, -1)  # (sub-batch, C, values)
    torch.testing.assert_close(net[0].running_mean, 0.1 * groups.mean(-1).mean(0))
    # PySlowFast's aggregate: mean of the unbiased variances + variance of the means. With biased variances that
    # sum is the whole batch's variance (the law of total variance): the spread between sub-batches is kept.
    between = groups.mean(-1).var(0, unbiased=False)
    torch.testing.assert_close(net[0].running_var, 0.9 + 0.1 * (groups.var(-1, unbiased=True).mean(0) + between))
    whole_var = x.transpose(0, 1).reshape(4, -1).var(-1, unbiased=False)
    torch.testing.assert_close(groups.var(-1, unbiased=False).mean(0) + between, whole_var)
    assert int(net[0].num_batches_tracked) == 1
    whole = copy.deepcopy(reference)
    torch.testing.assert_close(net[0](x), whole(x))  # outside the block: statistics over the whole batch again


def test_multigrid_bn_sub_trains_and_its_flag_is_checked(data, tmp_path, capsys):
    runs = {}
    for bn in ('sub', 'batch'):
        result = train_main.main(run_args(data, tmp_path / bn, '--arch', 'resnet18', '--shift', '--num_segments', '8',
                                          '--multigrid', 'long', '--multigrid_bn', bn, '--epochs', '2'))
        assert 0 <= result['top1'] <= 100
        runs[bn] = load_checkpoint(str(tmp_path / bn / 'ckpt' / 'run' / 'ckpt.pth.tar'))['state_dict']
    key = next(k for k in runs['sub'] if k.endswith('bn1.running_mean'))  # the stem's BatchNorm (partial BN is off)
    assert not torch.allclose(runs['sub'][key], runs['batch'][key])  # batches of 8 and 4 clips: 8 and 4 sub-batches
    for extra, message in ((['--multigrid_bn', 'sub'], 'only applies with --multigrid'),
                           (['--multigrid', 'long', '--multigrid_bn', 'sub', '--sync_bn'], 'SyncBatchNorm')):
        with pytest.raises(SystemExit):
            args_of('--arch', 'resnet18', '--num_segments', '8', *extra)
        assert message in capsys.readouterr().err
