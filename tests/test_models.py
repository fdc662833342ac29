"""ops/models.py: shapes, TSM parameter names, optimizer policies, partial BN."""
import pytest
import torch
import torch.nn as nn

from archs.base import run_modules
from ops.models import TSN


@pytest.mark.parametrize('arch', ['resnet18', 'resnet50'])
@pytest.mark.parametrize('shift', [False, True])
def test_output_shape(arch, shift):
    torch.manual_seed(0)
    model = TSN(5, 4, 'RGB', base_model=arch, pretrain='scratch', is_shift=shift).eval()
    out = model(torch.randn(3, 4 * 3, 32, 32))
    assert out.shape == (3, 5)
    assert torch.isfinite(out).all()


def test_identity_consensus_keeps_segments():
    model = TSN(5, 4, 'RGB', base_model='resnet18', pretrain='scratch', consensus_type='identity').eval()
    assert model(torch.randn(2, 12, 32, 32)).shape == (2, 4, 5)


def test_temporal_pool_and_block_shift_shapes():
    model = TSN(3, 8, 'RGB', base_model='resnet18', pretrain='scratch', is_shift=True,
                shift_place='block', temporal_pool=True).eval()
    assert model(torch.randn(2, 24, 32, 32)).shape == (2, 3)


def test_flow_model_takes_stacked_flow():
    model = TSN(3, 2, 'Flow', base_model='resnet18', pretrain='scratch').eval()
    assert model.base_model.conv1.in_channels == 10
    assert model(torch.randn(2, 2 * 10, 32, 32)).shape == (2, 3)


def test_early_fusion_stacks_k_frames_into_the_first_conv():
    """--new_length K with RGB (Karpathy et al.'s early fusion): 3K input channels, each frame's slice is the RGB
    kernel / K, so a stack of K identical frames gives the 1-frame network's stem output."""
    torch.manual_seed(0)
    one = TSN(4, 2, 'RGB', base_model='resnet18', pretrain='scratch').eval()
    torch.manual_seed(0)
    fused = TSN(4, 2, 'RGB', base_model='resnet18', pretrain='scratch', new_length=3).eval()
    assert fused.base_model.conv1.in_channels == 9 and fused.sample_len == 9
    torch.testing.assert_close(fused.base_model.conv1.weight[:, 3:6] * 3, one.base_model.conv1.weight)
    frame = torch.randn(2, 3, 32, 32)
    stem = [run_modules(m.base_model, m.layout.stem, x) for m, x in ((one, frame), (fused, frame.repeat(1, 3, 1, 1)))]
    torch.testing.assert_close(stem[1], stem[0], rtol=1e-5, atol=1e-5)
    assert fused(torch.randn(2, 2 * 9, 32, 32)).shape == (2, 4)
    assert fused.get_optim_policies()[0]['lr_mult'] == 1  # RGB's first conv learns at the base rate (Flow's: x5)


def test_early_fusion_trains_a_step_through_main(tmp_path):
    import main as train_main
    from ops.checkpoint import load_checkpoint
    from tools.make_move4mnist import main as make_move4mnist
    make_move4mnist(['--out', str(tmp_path / 'data'), '--num_train', '4', '--num_val', '2', '--seed', '0'])
    train_main.main(['move4mnist', 'RGB', '--root_path', str(tmp_path / 'data'), '--arch', 'resnet18',
                     '--num_segments', '2', '--new_length', '2', '-b', '4', '-j', '0', '--img_size', '32',
                     '--scale_size', '36', '--pretrain', 'scratch', '--npb', '--device', 'cpu', '--epochs', '1',
                     '--lr', '0.1', '--root_log', str(tmp_path / 'log'), '--root_model', str(tmp_path / 'ckpt'),
                     '--store_name', 'ef'])
    ckpt = load_checkpoint(str(tmp_path / 'ckpt' / 'ef' / 'ckpt.pth.tar'))
    assert ckpt['args']['new_length'] == 2 and ckpt['state_dict']['base_model.conv1.weight'].shape[1] == 6


def test_clip_backbone_refuses_frame_stacks():
    with pytest.raises(ValueError, match='new_length 2'):
        TSN(4, 4, 'RGB', base_model='r3d_18', pretrain='scratch', new_length=2)


def test_tsm_parameter_names():
    model = TSN(4, 8, 'RGB', base_model='resnet18', pretrain='scratch', is_shift=True)
    keys = set(model.state_dict())
    assert 'base_model.layer1.0.conv1.net.weight' in keys
    assert {'new_fc.weight', 'new_fc.bias'} <= keys
    assert not any(k.startswith('base_model.fc.') for k in keys)  # fc is TSM's dropout


def test_wrong_frame_count_is_an_error():
    model = TSN(4, 8, 'RGB', base_model='resnet18', pretrain='scratch')
    with pytest.raises(ValueError, match='num_segments=8'):
        model(torch.randn(1, 4 * 3, 32, 32))


@pytest.mark.parametrize('partial_bn', [True, False])
@pytest.mark.parametrize('modality,fc_lr5', [('RGB', False), ('Flow', True)])
def test_optim_policies_cover_every_trainable_parameter_once(partial_bn, modality, fc_lr5):
    model = TSN(4, 2, modality, base_model='resnet50', pretrain='scratch', is_shift=True,
                partial_bn=partial_bn, fc_lr5=fc_lr5)
    model.train()
    groups = model.get_optim_policies()
    ids = [id(p) for g in groups for p in g['params']]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    by_name = {g['name']: g for g in groups}
    assert by_name['first_conv_weight']['lr_mult'] == (5 if modality == 'Flow' else 1)
    assert by_name['normal_bias']['decay_mult'] == 0 and by_name['bn']['decay_mult'] == 0
    assert (id(model.new_fc.weight) in {id(p) for p in by_name['lr5_weight']['params']}) == fc_lr5


def test_partial_bn_freezes_all_but_the_first_batchnorm():
    model = TSN(4, 2, 'RGB', base_model='resnet18', pretrain='scratch', partial_bn=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns[0].training and bns[0].weight.requires_grad
    assert all(not m.training and not m.weight.requires_grad for m in bns[1:])
    running = bns[1].running_mean.clone()
    model(torch.randn(2, 6, 32, 32))
    assert torch.equal(bns[1].running_mean, running)


def test_pretrained_imagenet_fails_clearly_offline(monkeypatch, tmp_path):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))  # empty cache

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr('torch.hub.load_state_dict_from_url', no_network)
    with pytest.raises(RuntimeError, match='--pretrain scratch'):
        TSN(4, 2, 'RGB', base_model='resnet18', pretrain='imagenet')


def test_pretrained_imagenet_loads_from_the_local_cache(cached_weights):
    import torchvision
    torch.manual_seed(1)
    source = torchvision.models.resnet18(weights=None)
    cached_weights(torchvision.models.ResNet18_Weights.IMAGENET1K_V1, source.state_dict())
    model = TSN(4, 2, 'RGB', base_model='resnet18', pretrain='imagenet', is_shift=True)
    assert torch.equal(model.base_model.layer1[0].conv1.net.weight, source.layer1[0].conv1.weight)


@pytest.mark.parametrize('method', ['uniform', 'slope', 'cumulative'])
def test_clustering_with_g_equal_f_is_plain_tsm(method):
    torch.manual_seed(0)
    plain = TSN(4, 6, 'RGB', base_model='resnet18', pretrain='scratch', is_shift=True).eval()
    ours = TSN(4, 6, 'RGB', base_model='resnet18', pretrain='scratch', is_shift=True, cluster=method,
               num_frames=6).eval()
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(2, 6 * 3, 32, 32)
    assert torch.allclose(plain(x), ours(x), atol=1e-5)


def test_clustered_model_gives_gradient_to_every_frame():
    torch.manual_seed(0)
    model = TSN(4, 3, 'RGB', base_model='resnet18', pretrain='scratch', is_shift=True, cluster='cumulative',
                num_frames=12, partial_bn=False)
    x = torch.randn(2, 12 * 3, 32, 32, requires_grad=True)
    model(x).sum().backward()
    per_frame = x.grad.view(2, 12, -1).abs().sum(-1)
    assert (per_frame > 0).all()


def test_clustered_model_ignores_padding_frames():
    torch.manual_seed(0)
    model = TSN(4, 3, 'RGB', base_model='resnet18', pretrain='scratch', is_shift=True, cluster='slope',
                num_frames='all').eval()
    short = torch.randn(1, 7 * 3, 32, 32)
    padded = torch.cat([short, torch.randn(1, 3 * 3, 32, 32) * 10], dim=1)
    a = model(short, torch.tensor([7]))
    b = model(padded, torch.tensor([7]))
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize('cluster', ['none', 'cumulative'])
def test_bf16_autocast_and_channels_last_on_the_cpu(cluster):
    torch.manual_seed(0)
    kw = dict(cluster=cluster, num_frames=8 if cluster != 'none' else None)
    model = TSN(4, 4 if cluster != 'none' else 8, 'RGB', base_model='resnet18', pretrain='scratch', is_shift=True,
                partial_bn=False, dropout=0, **kw).eval()
    x = torch.randn(2, 8 * 3, 32, 32)
    ref = model(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = model(x)
    assert low.shape == ref.shape and torch.isfinite(low).all()
    assert torch.allclose(low.float(), ref, atol=0.05 * ref.abs().max().item() + 1e-3)
    model.to(memory_format=torch.channels_last)
    model.channels_last = True
    assert torch.allclose(model(x), ref, atol=1e-4)
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(model(x).float(), torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ------------------------------------------------------------------------- clip networks (3D CNNs) via the seam
CLIP_ARCHS = ['r3d_18', 'mc3_18', 'r2plus1d_18', 's3d', 'i3d_resnet50', 'x3d_xs', 'x3d_l', 'slowfast_r50']


@pytest.mark.parametrize('arch', CLIP_ARCHS)
def test_a_clip_backbone_runs_from_its_layout_as_its_own_forward(arch):
    """The seam's contract for 3D CNNs: stem, stages and head in order are the network's forward."""
    from archs import build_backbone
    from archs.base import run_modules
    torch.manual_seed(0)
    net, layout = build_backbone(arch, 'scratch')
    net.eval()
    x = torch.randn(1, 3, 8, 32, 32)
    y = run_modules(net, layout.stem, x)
    for paths in layout.stages:
        y = run_modules(net, paths, y)
    y = torch.flatten(run_modules(net, layout.head, y), 1)
    classifier = net.get_submodule(layout.classifier)
    with torch.no_grad():
        if arch == 's3d':  # torchvision's S3D classifies with a 1x1x1 convolution before its mean
            logits = classifier(y[:, :, None, None, None]).flatten(1)
        else:
            logits = classifier(y)
        assert torch.allclose(logits, net(x), atol=1e-5)
    assert layout.clip and y.shape == (1, layout.feature_dim)


@pytest.mark.parametrize('arch', ['r3d_18', 'x3d_xs'])
@pytest.mark.parametrize('method', ['uniform', 'slope', 'cumulative'])
def test_clustering_a_3d_backbone_with_g_equal_f_is_the_plain_clip_network(method, arch):
    torch.manual_seed(0)
    plain = TSN(4, 6, 'RGB', base_model=arch, pretrain='scratch').eval()
    ours = TSN(4, 6, 'RGB', base_model=arch, pretrain='scratch', cluster=method, num_frames=6).eval()
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(2, 6 * 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-6)


def test_a_clustered_3d_backbone_runs_its_later_stages_on_g_frames():
    torch.manual_seed(0)
    model = TSN(4, 4, 'RGB', base_model='r3d_18', pretrain='scratch', cluster='cumulative', num_frames=16).eval()
    seen = []
    model.base_model.layer2.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    out = model(torch.randn(2, 16 * 3, 32, 32), torch.tensor([16, 11]))
    assert out.shape == (2, 4) and seen[0][:3] == (2, 64, 4)  # (N, C, G, H, W): G = 4 cluster means
    assert model.clustering.last_assign.shape == (2, 16)


@pytest.mark.parametrize('flags,named', [({'is_shift': True}, '--shift'), ({'chunk_frames': 4}, '--chunk_frames'),
                                         ({'temporal_pool': True}, '--temporal_pool')])
def test_2d_only_options_are_refused_for_a_clip_backbone(flags, named):
    with pytest.raises(ValueError, match=f'r3d_18 is a clip network.*{named}'):
        TSN(4, 8, 'RGB', base_model='r3d_18', pretrain='scratch', **flags)


def test_a_clip_backbone_checkpoint_round_trips(tmp_path):
    from ops.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
    torch.manual_seed(0)
    model = TSN(4, 4, 'RGB', base_model='mc3_18', pretrain='scratch', cluster='slope', num_frames=8).eval()
    save_checkpoint({'state_dict': model.state_dict()}, str(tmp_path / 'c.pth.tar'))
    again = TSN(4, 4, 'RGB', base_model='mc3_18', pretrain='scratch', cluster='slope', num_frames=8).eval()
    load_model_weights(again, load_checkpoint(str(tmp_path / 'c.pth.tar'))['state_dict'], 'c.pth.tar')
    x = torch.randn(1, 8 * 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


# ------------------------------------------------------------------- pytorchvideo's networks: X3D and SlowFast
@pytest.mark.parametrize('arch,options', [('x3d_xs', {}), ('x3d_s', {}), ('x3d_m', {}), ('x3d_l', {}),
                                          ('slowfast_r50', {'alpha': 4}), ('slowfast_r50', {'alpha': 8})])
def test_x3d_and_slowfast_run_under_tsn(arch, options):
    torch.manual_seed(0)
    model = TSN(5, 8, 'RGB', base_model=arch, pretrain='scratch', backbone_options=options).eval()
    assert model.layout.clip and model.input_mean == [0.45] * 3 and model.input_std == [0.225] * 3
    with torch.no_grad():
        out = model(torch.randn(2, 8 * 3, 32, 32))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize('arch,size', [('x3d_xs', 160), ('x3d_s', 160), ('x3d_m', 224), ('x3d_l', 312),
                                       ('slowfast_r50', 224)])
def test_x3d_and_slowfast_take_their_published_training_crop(arch, size):
    from archs import backbone_layout
    assert backbone_layout(arch).input_size == size


@pytest.mark.parametrize('alpha', [4, 8])
def test_slowfast_under_tsn_gives_the_slow_pathway_every_alpha_th_frame(alpha):
    torch.manual_seed(0)
    model = TSN(5, 16, 'RGB', base_model='slowfast_r50', pretrain='scratch', backbone_options={'alpha': alpha})
    seen = []
    model.base_model.blocks[1].register_forward_pre_hook(lambda m, args: seen.append([p.shape for p in args[0]]))
    with torch.no_grad():
        model.eval()(torch.randn(1, 16 * 3, 32, 32))
    assert seen[0][0][2] == 16 // alpha and seen[0][1][2] == 16  # (N, C, T, H, W): slow T/alpha, fast T
    assert model.base_model.alpha == alpha


def test_state_dict_names_under_tsn_are_base_model_and_pytorchvideos():
    from archs.slowfast import build_slowfast
    from archs.x3d import build_x3d
    for arch, net in (('x3d_xs', build_x3d('x3d_xs')), ('slowfast_r50', build_slowfast(alpha=8))):
        options = {'alpha': 8} if arch == 'slowfast_r50' else {}
        model = TSN(5, 8, 'RGB', base_model=arch, pretrain='scratch', backbone_options=options)
        ours = {k: v.shape for k, v in model.state_dict().items()}
        theirs = {f'base_model.{k}': v.shape for k, v in net.state_dict().items()}
        classifier = f'base_model.{model.layout.classifier}.'
        assert {k for k in theirs if not k.startswith(classifier)} | {'new_fc.weight', 'new_fc.bias'} == set(ours)
        assert all(ours[k] == shape for k, shape in theirs.items() if k in ours)


def test_clustered_x3d_sees_every_frame_until_res2_and_g_after():
    torch.manual_seed(0)
    model = TSN(4, 4, 'RGB', base_model='x3d_xs', pretrain='scratch', cluster='cumulative', num_frames=16).eval()
    seen = {}
    for i in (1, 2):
        model.base_model.blocks[i].register_forward_pre_hook(lambda m, args, i=i: seen.update({i: args[0].shape}))
    with torch.no_grad():
        out = model(torch.randn(2, 16 * 3, 32, 32))
    assert out.shape == (2, 4) and seen[1][2] == 16 and seen[2][2] == 4  # no temporal stride before the clustering


@pytest.mark.parametrize('method', ['uniform', 'slope', 'cumulative'])
def test_clustering_slowfast_with_g_equal_f_is_the_plain_network_at_alpha_1(method):
    """With alpha = 1 the plain Slow pathway sees every frame and its lateral connections have stride 1: what the
    clustered network computes with G = F (the clustering point's map is then the identity)."""
    torch.manual_seed(0)
    options = {'alpha': 1, 'fusion_kernel': 5}
    plain = TSN(4, 8, 'RGB', base_model='slowfast_r50', pretrain='scratch', backbone_options=options).eval()
    nn.init.normal_(plain.new_fc.weight)  # logits of size 1, not 1e-3
    ours = TSN(4, 8, 'RGB', base_model='slowfast_r50', pretrain='scratch', backbone_options=options,
               cluster=method, num_frames=8).eval()
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8 * 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('alpha,cluster_after', [(4, 1), (8, 2)])
def test_clustered_slowfast_gives_the_slow_pathway_g_means_and_the_fast_one_every_frame(alpha, cluster_after):
    torch.manual_seed(0)
    model = TSN(4, 4, 'RGB', base_model='slowfast_r50', pretrain='scratch', backbone_options={'alpha': alpha},
                cluster='cumulative', num_frames=16, cluster_after=cluster_after)
    seen = {}
    for i in range(1, 5):
        model.base_model.blocks[i].register_forward_pre_hook(
            lambda m, args, i=i: seen.update({i: [p.shape[2] for p in args[0]]}))
    x = torch.randn(2, 16 * 3, 32, 32, requires_grad=True)
    model(x, torch.tensor([16, 11])).sum().backward()
    assert [seen[i] for i in range(1, 5)] == [[16, 16]] * cluster_after + [[4, 16]] * (4 - cluster_after)
    assert model.clustering.last_assign.shape == (2, 16)
    per_frame = x.grad.view(2, 16, -1).abs().sum(-1)
    assert (per_frame[0] > 0).all() and (per_frame[1, :11] > 0).all()  # every real frame gets gradient


@pytest.mark.parametrize('arch', ['x3d_m', 'slowfast_r50'])
def test_pytorchvideos_weights_are_not_downloaded_but_converted(arch):
    with pytest.raises(ValueError, match='convert_checkpoint.py.*--from pytorchvideo.*--tune_from'):
        TSN(4, 8, 'RGB', base_model=arch, pretrain='imagenet')
