"""builder.py: evaluation frames resized at load only for our own transform; the lr schedule's warm-up; the
model's initialisation; the Flow crop's flip; --fc_lr5; test views; a checkpoint's stored flags; channels-last."""
import math

import pytest
import torch

import builder
import ops.dataset
import opts
from builder import build_dataset, build_model
from ops.dataset_config import return_dataset


def test_validation_frames_are_resized_at_load_only_with_our_transform(tmp_path, monkeypatch):
    """Validation: decode and resize to scale_size at load (its transform begins with GroupScale(scale_size));
    training, and a caller's own transform, get no resize at load."""
    seen = []
    monkeypatch.setattr(ops.dataset, 'VideoDataset', lambda *a, **kw: seen.append(kw) or kw)
    args = opts.parse_args(['move4mnist', 'RGB', '--arch', 'resnet18', '--num_segments', '4', '--img_size', '32',
                            '--scale_size', '36', '--pretrain', 'scratch', '--device', 'cpu'])
    model = build_model(args, 4, print_spec=False)
    config = return_dataset('move4mnist', 'RGB', root_path=str(tmp_path))
    val = build_dataset(args, config, model, train=False)
    assert val['resize_short'] == 36 and val['decode_size'] == 36
    assert val['transform'].transforms[0].transforms[0].size == 36  # GroupScale(scale_size) comes first
    train = build_dataset(args, config, model, train=True)
    assert train['resize_short'] is None and train['decode_size'] == 49  # ceil(32 / 0.66)
    own = build_dataset(args, config, model, train=False, transform=lambda images: images)
    assert own['resize_short'] is None and len(seen) == 3


def test_learning_rate_warm_up_rises_linearly_then_follows_the_schedule():
    """--warmup_epochs W: the rate is the schedule's times epoch / W before W, the schedule itself after."""
    from builder import learning_rate
    args = opts.parse_args(['move4mnist', 'RGB', '--lr', '0.01', '--lr_type', 'cos', '--epochs', '10',
                            '--warmup_epochs', '2'])
    cos = lambda e: 0.5 * 0.01 * (1 + math.cos(math.pi * e / 10))  # noqa: E731
    assert learning_rate(args, 0.5) == pytest.approx(cos(0.5) * 0.25)
    assert learning_rate(args, 1.0) == pytest.approx(cos(1.0) * 0.5)
    assert learning_rate(args, 2.0) == pytest.approx(cos(2.0)) and learning_rate(args, 7) == pytest.approx(cos(7))
    args.warmup_epochs = 0
    assert learning_rate(args, 0) == pytest.approx(0.01)  # no warm-up: the schedule from the first step


def test_zero_init_residual_starts_every_block_as_the_identity():
    """--zero_init_residual: the last BatchNorm of each residual block is zero; without it, it is one."""
    for flag, value in ((['--zero_init_residual'], 0.0), ([], 1.0)):
        args = opts.parse_args(['move4mnist', 'RGB', '--arch', 'resnet18', '--pretrain', 'scratch', '--shift', *flag])
        model = build_model(args, 4, print_spec=False)
        last_bns = [block.bn2.weight for name in ('layer1', 'layer2', 'layer3', 'layer4')
                    for block in getattr(model.base_model, name)]
        assert len(last_bns) == 8 and all(torch.all(w == value) for w in last_bns), flag


def test_flow_training_flip_inverts_the_x_images():
    """A mirrored flow stack must also negate x (TSN): x' = 255 - x, y unchanged."""
    import random
    from types import SimpleNamespace

    from PIL import Image

    from builder import build_transform
    args = opts.parse_args(['ucf101', 'Flow', '--img_size', '32', '--pretrain', 'scratch'])
    model = SimpleNamespace(input_mean=[0.5], input_std=[0.226])
    transform = build_transform(args, model, train=True, flip=True)
    x, y = Image.new('L', (40, 40), 200), Image.new('L', (40, 40), 60)
    seen = set()
    random.seed(0)
    for _ in range(20):
        out = transform([x, y])  # (2, 32, 32), normalised
        levels = (out.mean(dim=(1, 2)) * 0.226 + 0.5) * 255
        seen.add(round(levels[0].item()))
        assert round(levels[1].item()) == 60
    assert seen == {200, 55}


def _lr_mults(model) -> dict:
    """The optimizer groups' lr multiplier of the new classifier's weight and bias."""
    ids = {id(model.new_fc.weight): 'weight', id(model.new_fc.bias): 'bias'}
    return {ids[id(p)]: g['lr_mult'] for g in model.get_optim_policies() for p in g['params'] if id(p) in ids}


@pytest.mark.parametrize('flags, tuned_on, expected', [
    (['--pretrain', 'scratch'], None, False),                       # from scratch: off
    (['--pretrain', 'imagenet'], None, True),                      # ImageNet weights: another task
    (['--pretrain', 'scratch', '--tune_from', 'x'], 'ucf101', True),   # another data set's checkpoint
    (['--pretrain', 'scratch', '--tune_from', 'x'], 'movingmnist', False),  # the same data set (an alias)
    (['--pretrain', 'scratch', '--tune_from', 'x'], '', True),      # TSM's checkpoint: no stored args
    (['--pretrain', 'scratch', '--fc_lr5', 'on'], None, True),
    (['--pretrain', 'imagenet', '--fc_lr5', 'off'], None, False),
    (['--arch', 's3d', '--pretrain', 'kinetics400'], None, True),  # Kinetics-400 weights: another task
])
def test_fc_lr5_gives_the_new_classifier_lr_x5_and_bias_x10_only_for_another_tasks_weights(flags, tuned_on,
                                                                                          expected):
    """--fc_lr5 auto as TSM: on from another task's weights (ImageNet, another data set's checkpoint)."""
    args = opts.parse_args(['move4mnist', 'RGB', '--arch', 'resnet18', '--num_segments', '2', *flags])
    tune_args = None if tuned_on is None else ({'dataset': tuned_on} if tuned_on else {})
    fc_lr5 = builder.use_fc_lr5(args, tune_args)
    assert fc_lr5 is expected
    model = build_model(args, 4, print_spec=False, pretrain='scratch', fc_lr5=fc_lr5)  # no download
    assert _lr_mults(model) == ({'weight': 5, 'bias': 10} if expected else {'weight': 1, 'bias': 2})


def test_main_tunes_with_fc_lr5_from_the_stored_data_set_not_the_path(tmp_path, monkeypatch):
    """main.py's setup reads the --tune_from checkpoint's stored data set: a file named after move4mnist that
    holds a ucf101 run's weights turns fc_lr5 on; the same file storing move4mnist leaves it off."""
    import main as train_main
    from ops.checkpoint import save_checkpoint
    base = ['move4mnist', 'RGB', '--arch', 'resnet18', '--num_segments', '2', '--pretrain', 'scratch', '--npb',
            '--device', 'cpu', '--root_path', str(tmp_path), '--root_log', str(tmp_path / 'log'),
            '--root_model', str(tmp_path / 'ckpt')]
    (tmp_path / 'train_videofolder.txt').write_text('')
    path = str(tmp_path / 'move4mnist_best.pth.tar')
    source = build_model(opts.parse_args(base), 4, print_spec=False)
    monkeypatch.setattr(train_main.dist_utils, 'init_from_env', lambda device: (0, 1))
    for stored, expected in (('ucf101', {'weight': 5, 'bias': 10}), ('move4mnist', {'weight': 1, 'bias': 2})):
        save_checkpoint({'state_dict': source.state_dict(), 'args': {'dataset': stored}}, path)
        run = train_main.setup(base + ['--tune_from', path])
        ids = {id(run.model.new_fc.weight): 'weight', id(run.model.new_fc.bias): 'bias'}
        assert {ids[id(p)]: g['lr_mult'] for g in run.optimizer.param_groups for p in g['params']
                if id(p) in ids} == expected, stored


def test_test_views_come_from_the_builder(tmp_path, monkeypatch):
    """Test datasets: the crops' transform starts with GroupScale(scale_size), frames resized at load, clips
    and twice_sample passed on; collate_views pads each view with its last frame."""
    seen = []
    monkeypatch.setattr(ops.dataset, 'VideoDataset', lambda *a, **kw: seen.append(kw) or kw)
    args = opts.parse_args(['move4mnist', 'RGB', '--arch', 'resnet18', '--num_segments', '4', '--img_size', '32',
                            '--scale_size', '36', '--pretrain', 'scratch'])
    model = build_model(args, 4, print_spec=False)
    config = return_dataset('move4mnist', 'RGB', root_path=str(tmp_path))
    one = builder.build_test_dataset(args, config, model, crops=1, clips=3)
    assert one['test_mode'] and one['num_clips'] == 3 and one['resize_short'] == 36 and one['decode_size'] == 36
    assert one['transform'].transforms[0].transforms[0].size == 36
    twice = builder.build_test_dataset(args, config, model, crops=10, twice_sample=True)
    assert twice['twice_sample'] and twice['num_clips'] == 1
    from PIL import Image
    out = twice['transform']([Image.new('RGB', (48, 40))] * 2)
    assert out.shape == (10 * 2 * 3, 32, 32)  # 10 crops of 2 frames
    short, long = torch.zeros(2 * 1 * 3, 4, 4), torch.ones(2 * 3 * 3, 4, 4)  # 2 views of 1 and of 3 frames
    frames, labels, lengths = builder.collate_views([(short, 0, 1), (long, 1, 3)], views=2, channels=3)
    assert frames.shape == (2, 2, 9, 4, 4) and labels.tolist() == [0, 1] and lengths.tolist() == [1, 3]


def test_checkpoint_args_take_the_stored_model_and_refuse_contradicting_flags(tmp_path):
    """A checkpoint's stored flags decide the model; data paths follow another data set; pretrain is scratch."""
    train = opts.parse_args(['move4mnist', 'RGB', '--arch', 'resnet18', '--cluster', 'cumulative',
                             '--num_segments', '4', '--frames', '16', '--root_path', '/old', '--channels_last'])
    saved = vars(train)
    args = builder.checkpoint_args(saved, 'c.pth')
    assert (args.arch, args.cluster, args.num_segments, args.frames, args.root_path) == (
        'resnet18', 'cumulative', 4, 16, '/old')
    assert args.pretrain == 'scratch' and not args.channels_last
    other = builder.checkpoint_args(saved, 'c.pth', dataset='ucf101', data={'root_path': '/new'})
    assert other.dataset == 'ucf101' and other.root_path == '/new' and other.train_list is None
    with pytest.raises(ValueError, match='--arch'):
        builder.checkpoint_args(saved, 'c.pth', extra=['--arch', 'resnet50'])
    with pytest.raises(ValueError, match='no .args.'):
        builder.checkpoint_args(None, 'tsm.pth')
    assert builder.checkpoint_args(None, 'tsm.pth', 'ucf101', extra=['--arch', 'resnet34']).arch == 'resnet34'
    sized = builder.eval_sizes(builder.checkpoint_args(saved, 'c.pth'), img_size=112)
    assert (sized.img_size, sized.scale_size) == (112, 128)


def test_channels_last_reaches_the_model_through_the_constructor():
    """--channels_last: the model converts each frame in forward and its conv weights are channels-last."""
    args = opts.parse_args(['move4mnist', 'RGB', '--arch', 'resnet18', '--num_segments', '2', '--pretrain',
                            'scratch', '--channels_last'])
    model = build_model(args, 4, print_spec=False)
    weight = model.base_model.conv1.weight
    assert model.channels_last and weight.is_contiguous(memory_format=torch.channels_last)
    args.channels_last = False
    assert not build_model(args, 4, print_spec=False).channels_last


@pytest.mark.parametrize('arch', ['r3d_18', 'x3d_xs'])
def test_channels_last_on_a_clip_backbone_is_the_3d_layout_and_runs(arch):
    """--channels_last with a 3D CNN: its 5-D weights take torch.channels_last_3d (the 2-D format cannot hold them)
    and the model gives the same scores as without the flag."""
    args = opts.parse_args(['move4mnist', 'RGB', '--arch', arch, '--num_segments', '4', '--pretrain', 'scratch',
                            '--channels_last'])
    torch.manual_seed(0)
    model = build_model(args, 4, print_spec=False).eval()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    args.channels_last = False
    plain = build_model(args, 4, print_spec=False).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 4 * 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-4)


def test_clip_backbones_get_clip_sampling_from_the_builder(tmp_path, monkeypatch):
    """A clip backbone's training, validation and test datasets sample clips at --sample_rate (one random, the
    centre one, N spread evenly); a 2D backbone's keep TSN's segments (sample_rate None)."""
    seen = []
    monkeypatch.setattr(ops.dataset, 'VideoDataset', lambda *a, **kw: seen.append(kw) or kw)
    config = return_dataset('move4mnist', 'RGB', root_path=str(tmp_path))
    base = ['move4mnist', 'RGB', '--num_segments', '4', '--img_size', '32', '--pretrain', 'scratch']
    args = opts.parse_args(base + ['--arch', 'mc3_18', '--sample_rate', '3'])
    model = build_model(args, 4, print_spec=False)
    train, val = build_dataset(args, config, model, train=True), build_dataset(args, config, model, train=False)
    test = builder.build_test_dataset(args, config, model, crops=3, clips=10)
    assert train['sample_rate'] == val['sample_rate'] == test['sample_rate'] == 3
    assert train['random_shift'] and not val['random_shift'] and test['num_clips'] == 10
    assert builder.store_name(args).endswith('_segment4_e120_scratch_rate3')
    fused = opts.parse_args(base + ['--arch', 'resnet18', '--new_length', '2'])
    assert builder.store_name(fused).endswith('_scratch_len2')
    flat = opts.parse_args(base + ['--arch', 'resnet18'])
    assert build_dataset(flat, config, build_model(flat, 4, print_spec=False), train=True)['sample_rate'] is None


def test_kinetics400_weights_load_through_the_builder(tmp_path, monkeypatch):
    """--pretrain kinetics400: TSN's backbone holds torchvision's Kinetics-400 weights, read from TORCH_HOME."""
    import urllib.error

    import torch.hub
    import torchvision.models.video as tvv

    from archs.video_torchvision import kinetics_weights_file

    def no_network(*args, **kwargs):
        raise urllib.error.URLError('no network in this test')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    torch.manual_seed(2)
    saved = tvv.s3d(weights=None).state_dict()
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True)
    torch.save(saved, tmp_path / 'hub' / 'checkpoints' / kinetics_weights_file('s3d'))
    args = opts.parse_args(['move4mnist', 'RGB', '--arch', 's3d', '--num_segments', '8', '--pretrain',
                            'kinetics400'])
    model = build_model(args, 4, print_spec=False)
    own = model.base_model.state_dict()
    backbone = [k for k in saved if not k.startswith('classifier.')]
    assert len(backbone) > 100 and all(torch.equal(own[k], saved[k]) for k in backbone)
    assert model.new_fc.out_features == 4 and builder.store_name(args).endswith('_kinetics400')
    (tmp_path / 'hub' / 'checkpoints' / kinetics_weights_file('s3d')).unlink()
    with pytest.raises(RuntimeError, match=kinetics_weights_file('s3d')):
        build_model(args, 4, print_spec=False)


def test_tune_from_a_2d_resnet50_inflates_it_into_i3d(tmp_path, monkeypatch):
    """--tune_from with --arch i3d_resnet50: our TSN ResNet-50 checkpoint (TSM's names, trained 0 steps) is
    inflated (each conv repeated over its temporal size / t), as is torchvision's bare state dict; a 3D checkpoint
    loads by name; a 2D checkpoint that is no ResNet-50 is refused naming the file."""
    import torchvision

    import main as train_main
    from archs.i3d import inflate_conv
    from ops.checkpoint import CheckpointError, save_checkpoint
    base = ['move4mnist', 'RGB', '--num_segments', '2', '--pretrain', 'scratch', '--npb', '--device', 'cpu',
            '--root_path', str(tmp_path), '--root_log', str(tmp_path / 'log'), '--root_model', str(tmp_path / 'ckpt')]
    (tmp_path / 'train_videofolder.txt').write_text('')
    torch.manual_seed(4)
    source = build_model(opts.parse_args(base + ['--arch', 'resnet50', '--shift']), 4, print_spec=False)
    path = str(tmp_path / 'tsn_r50.pth.tar')
    save_checkpoint({'state_dict': source.state_dict(), 'args': {'dataset': 'ucf101'}}, path)
    monkeypatch.setattr(train_main.dist_utils, 'init_from_env', lambda device: (0, 1))
    model = train_main.setup(base + ['--arch', 'i3d_resnet50', '--tune_from', path]).model
    src = source.state_dict()
    own = model.base_model
    assert torch.equal(own.layer1[0].conv1.weight, inflate_conv(src['base_model.layer1.0.conv1.net.weight'], 3))
    assert torch.equal(own.conv1.weight, inflate_conv(src['base_model.conv1.weight'], 5))
    assert torch.equal(own.layer3[2].bn2.running_var, src['base_model.layer3.2.bn2.running_var'])
    tv = torchvision.models.resnet50(weights=None).state_dict()
    torch.save(tv, tmp_path / 'tv.pth')
    from ops.checkpoint import load_checkpoint
    assert builder.load_tune_from(model, load_checkpoint(str(tmp_path / 'tv.pth'))['state_dict'],
                                  'tv.pth') != 'by name'
    assert torch.equal(model.base_model.layer4[1].conv2.weight, tv['layer4.1.conv2.weight'].unsqueeze(2))
    assert builder.load_tune_from(model, model.state_dict(), 'i3d.pth') == 'by name'
    with pytest.raises(CheckpointError, match='r18.pth'):
        builder.load_tune_from(model, torchvision.models.resnet18(weights=None).state_dict(), 'r18.pth')


def test_a_clip_checkpoint_evaluated_with_clustering_drops_its_stride():
    """A clip network trained with --cluster none stores --sample_rate; evaluated (--override_model_args) or
    analysed with a clustering, it takes every frame, so the stored stride is dropped, not refused."""
    saved = vars(opts.parse_args(['move4mnist', 'RGB', '--arch', 'r3d_18', '--sample_rate', '2']))
    assert saved['sample_rate'] == 2
    args = opts.parse_args(['move4mnist', 'RGB', '--arch', 'r3d_18', '--cluster', 'uniform'])
    builder.apply_stored(args, saved, {'cluster': 'uniform'}, 'c.pth', override=True)
    assert (args.cluster, args.sample_rate, args.frames) == ('uniform', None, 32)
    again = opts.parse_args(['move4mnist', 'RGB'])
    builder.apply_stored(again, saved, {}, 'c.pth')
    assert (again.arch, again.sample_rate) == ('r3d_18', 2)


@pytest.mark.parametrize('argv,alpha', [([], 4), (['--slowfast_alpha', '8'], 8)])
def test_slowfast_alpha_reaches_the_backbone_as_a_builder_option(argv, alpha):
    args = opts.parse_args(['move4mnist', 'RGB', '--arch', 'slowfast_r50', '--num_segments', '16', '--pretrain',
                            'scratch', *argv])
    model = build_model(args, 4, print_spec=False)
    assert model.base_model.alpha == alpha and builder.backbone_options(args) == ({'alpha': 8} if argv else {})
    assert ('alpha8' in builder.store_name(args)) == bool(argv)
