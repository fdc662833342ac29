"""archs/mobilenet_v2.py: TSM's MobileNetV2 through the backbone seam (names, shift placement, training)."""
import copy
from pathlib import Path

import pytest
import torch
import torchvision

import main as train_main
from archs import build_backbone
from archs.mobilenet_v2 import flatten_blocks
from ops.checkpoint import load_checkpoint, load_model_weights
from ops.chunked import shift_halo
from ops.models import TSN
from ops.temporal_shift import TemporalShift

# TSM's archs/mobilenet_v2.py, the inverted residual setting: expansion t, channels c, repeats n, stride s.
TSM_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]


def tsm_blocks():
    """(feature index, expansion, has residual) of each inverted residual block, from TSM's setting."""
    blocks, index, cin = [], 1, 32
    for t, c, n, s in TSM_SETTING:
        for i in range(n):
            blocks.append((index, t, (s if i == 0 else 1) == 1 and cin == c))
            index, cin = index + 1, c
    return blocks


def tsm_state_keys(shifted):
    """The state-dict keys of TSM's TSN with a MobileNetV2 (``shifted``: feature indices whose conv.0 is shifted)."""
    bn = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
    keys = ['features.0.0.weight'] + [f'features.0.1.{k}' for k in bn]
    for index, t, _ in tsm_blocks():
        convs, bns = ((0, 3, 6), (1, 4, 7)) if t != 1 else ((0, 3), (1, 4))
        for c in convs:
            keys.append(f'features.{index}.conv.{c}{".net" if c == 0 and index in shifted else ""}.weight')
        keys += [f'features.{index}.conv.{b}.{k}' for b in bns for k in bn]
    keys += ['features.18.0.weight'] + [f'features.18.1.{k}' for k in bn]
    return {f'base_model.{k}' for k in keys} | {'new_fc.weight', 'new_fc.bias'}


def test_tsm_shift_placement_and_parameter_names():
    expected = [i for i, t, res in tsm_blocks() if t != 1 and res]  # TSM: len(conv) == 8 and use_res_connect
    assert len(expected) == 10
    model = TSN(5, 8, 'RGB', base_model='mobilenetv2', pretrain='scratch', is_shift=True)
    shifted = sorted(int(name.split('.')[2]) for name, m in model.named_modules() if isinstance(m, TemporalShift))
    assert shifted == expected
    assert set(model.state_dict()) == tsm_state_keys(set(expected))


def test_a_tsm_layout_checkpoint_loads_by_name(tmp_path):
    model = TSN(5, 8, 'RGB', base_model='mobilenetv2', pretrain='scratch', is_shift=True)
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=gen) if v.is_floating_point() else v)
             for k, v in model.state_dict().items()}  # TSM's names (checked above), other values
    torch.save({'state_dict': {f'module.{k}': v for k, v in state.items()}}, tmp_path / 'tsm_mbv2.pth.tar')
    loaded = load_checkpoint(str(tmp_path / 'tsm_mbv2.pth.tar'))['state_dict']
    load_model_weights(model, loaded, str(tmp_path / 'tsm_mbv2.pth.tar'))
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_flattening_keeps_torchvisions_function():
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(weights=None).eval()
    flat = copy.deepcopy(net)
    flatten_blocks(flat)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net.features(x), flat.features(x))
    assert len(flat.features[1].conv) == 5 and len(flat.features[2].conv) == 8


def test_the_stages_follow_the_output_stride():
    net, layout = build_backbone('mobilenetv2', 'scratch')
    x = net.get_submodule(layout.stem[0])(torch.randn(1, 3, 64, 64))
    strides = []
    for paths in layout.stages:
        for p in paths:
            x = net.get_submodule(p)(x)
        strides.append(64 // x.shape[-1])
    assert strides == [4, 8, 16, 32] and x.shape[1] == layout.feature_dim == 1280


def test_clustering_after_the_first_stage_chunks_exactly():
    torch.manual_seed(0)
    kw = dict(base_model='mobilenetv2', pretrain='scratch', is_shift=True, cluster='cumulative', num_frames=10,
              partial_bn=False)
    plain = TSN(4, 3, 'RGB', **kw).double().eval()
    chunked = TSN(4, 3, 'RGB', chunk_frames=3, **kw).double().eval()
    chunked.load_state_dict(plain.state_dict())
    assert shift_halo(chunked.early_modules()) == 1  # features.3, the one shifted block of stage 1
    x = torch.randn(2, 10 * 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(chunked(x), plain(x), rtol=1e-9, atol=1e-10)


def test_main_trains_an_epoch_with_clustering(tmp_path):
    from tools.make_move4mnist import main as make_move4mnist
    data = tmp_path / 'data'
    make_move4mnist(['--out', str(data), '--num_train', '4', '--num_val', '2', '--seed', '0'])
    result = train_main.main([
        'move4mnist', 'RGB', '--root_path', str(data), '--arch', 'mobilenetv2', '--shift', '--cluster',
        'cumulative', '--frames', '32', '--num_segments', '4', '--epochs', '1', '-b', '2', '-j', '0',
        '--img_size', '32', '--scale_size', '36', '--pretrain', 'scratch', '--npb', '--device', 'cpu',
        '--lr', '0.01', '--root_log', str(tmp_path / 'log'), '--root_model', str(tmp_path / 'ckpt'),
        '--store_name', 'mbv2'])
    ckpt = load_checkpoint(str(tmp_path / 'ckpt' / 'mbv2' / 'ckpt.pth.tar'))
    assert ckpt['epoch'] == 1 and ckpt['args']['arch'] == 'mobilenetv2'
    assert 'base_model.features.3.conv.0.net.weight' in ckpt['state_dict']
    assert 0.0 <= result['top1'] <= 100.0


def test_imagenet_weights_load_from_the_local_cache(cached_weights):
    torch.manual_seed(1)
    source = torchvision.models.mobilenet_v2(weights=None)
    cached_weights(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1, source.state_dict())
    model = TSN(4, 2, 'RGB', base_model='mobilenetv2', pretrain='imagenet', is_shift=True)
    # torchvision's features.3.conv.0.0 (the expanding conv) is TSM's features.3.conv.0, shifted
    assert torch.equal(model.base_model.features[3].conv[0].net.weight, source.features[3].conv[0][0].weight)
    assert torch.equal(model.base_model.features[3].conv[7].running_var, source.features[3].conv[3].running_var)
