"""archs/x3d.py: shapes, the X3D block structure, pytorchvideo's checkpoint names, costs."""
import io

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from archs.x3d import X3D_SPECS, Bottleneck, ResBlock, SqueezeExcitation, Stem, build_x3d, clipped_avg_pool

# Facts read from pytorchvideo 0.1.5's hub builders x3d_xs / x3d_m / x3d_l(pretrained=False), whose
# state dicts are the 'model_state' of X3D_XS.pyth ... X3D_L.pyth. Every name and shape: tests/data (the
# pytorchvideo_state_dict fixture); logits against pytorchvideo's own networks (with head_activation=None; the hub
# default ends in a softmax per head window): tests/test_pytorchvideo_parity.py, where pytorchvideo is installed.
PTV_X3D_KEYS = {'x3d_xs': 563, 'x3d_s': 563, 'x3d_m': 563, 'x3d_l': 1141}
PTV_X3D_PARAMS = {'x3d_xs': 3_794_274, 'x3d_s': 3_794_274, 'x3d_m': 3_794_274, 'x3d_l': 6_153_384}
PTV_X3D_SHAPES = {
    'blocks.0.conv.conv_t.weight': (24, 3, 1, 3, 3),
    'blocks.0.conv.conv_xy.weight': (24, 1, 5, 1, 1),
    'blocks.0.norm.running_var': (24,),
    'blocks.1.res_blocks.0.branch1_conv.weight': (24, 24, 1, 1, 1),
    'blocks.1.res_blocks.0.branch2.conv_a.weight': (54, 24, 1, 1, 1),
    'blocks.1.res_blocks.0.branch2.conv_b.weight': (54, 1, 3, 3, 3),
    'blocks.1.res_blocks.0.branch2.norm_b.0.weight': (54,),
    'blocks.1.res_blocks.0.branch2.norm_b.1.block.0.weight': (8, 54, 1, 1, 1),
    'blocks.1.res_blocks.0.branch2.norm_b.1.block.2.bias': (54,),
    'blocks.1.res_blocks.1.branch2.norm_b.0.num_batches_tracked': (),
    'blocks.3.res_blocks.0.branch2.norm_b.1.block.0.weight': (16, 216, 1, 1, 1),
    'blocks.4.res_blocks.0.branch2.norm_b.1.block.0.weight': (32, 432, 1, 1, 1),
    'blocks.4.res_blocks.6.branch2.conv_c.weight': (192, 432, 1, 1, 1),
    'blocks.5.pool.pre_conv.weight': (432, 192, 1, 1, 1),
    'blocks.5.pool.pre_norm.weight': (432,),
    'blocks.5.pool.post_conv.weight': (2048, 432, 1, 1, 1),
    'blocks.5.proj.weight': (400, 2048),
    'blocks.5.proj.bias': (400,),
}
ABSENT = ['blocks.1.res_blocks.0.branch1_norm.weight', 'blocks.1.res_blocks.1.branch1_conv.weight', 'blocks.1.res_blocks.1.branch2.norm_b.1.block.0.weight',
          'blocks.5.pool.post_norm.weight']
# GMACs per clip with torch's FlopCounterMode at the model zoo's inputs (issue 19's targets, pytorchvideo's models)
ZOO_GMACS = {'x3d_xs': (4, 182, 0.839), 'x3d_s': (13, 182, 2.722), 'x3d_m': (16, 256, 6.181)}


def _clip(frames=4, size=64, n=2):
    return torch.randn(n, 3, frames, size, size, generator=torch.Generator().manual_seed(0))


def test_logits_shape_and_finite():
    model = build_x3d('x3d_xs', num_classes=7).eval()
    with torch.no_grad():
        out = model(_clip())
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_blocks_are_stem_four_stages_head():
    model = build_x3d('x3d_s')
    assert isinstance(model.blocks, nn.ModuleList) and len(model.blocks) == 6
    assert isinstance(model.blocks[0], Stem)
    x = _clip(frames=2, n=1)
    widths = []
    with torch.no_grad():
        for block in model.blocks[:-1]:
            x = block(x)
            widths.append(tuple(x.shape[1:]))
    assert widths == [(24, 2, 32, 32), (24, 2, 16, 16), (48, 2, 8, 8), (96, 2, 4, 4), (192, 2, 2, 2)]


@pytest.mark.parametrize('name,depths', [('x3d_xs', [3, 5, 11, 7]), ('x3d_m', [3, 5, 11, 7]),
                                         ('x3d_l', [5, 10, 25, 15])])
def test_stage_depths(name, depths):
    model = build_x3d(name)
    assert [len(stage.res_blocks) for stage in model.blocks[1:5]] == depths


def test_block_structure_depthwise_se_every_other_swish():
    model = build_x3d('x3d_m')
    for stage, inner in zip(model.blocks[1:5], (54, 108, 216, 432)):  # 2.25 x the stage width
        for i, block in enumerate(stage.res_blocks):
            assert isinstance(block, ResBlock)
            b = block.branch2
            assert isinstance(b, Bottleneck)
            assert b.conv_b.kernel_size == (3, 3, 3) and b.conv_b.groups == b.conv_b.in_channels == inner
            assert b.conv_b.stride == ((1, 2, 2) if i == 0 else (1, 1, 1))
            assert isinstance(b.norm_b[1], SqueezeExcitation) == (i % 2 == 0)
            assert isinstance(b.act_b, nn.SiLU) and isinstance(b.act_a, nn.ReLU)
            assert (block.branch1_conv is None) == (i > 0)
            assert (block.branch1_norm is None) == (i > 0 or stage is model.blocks[1])  # pytorchvideo's quirk


def test_squeeze_excitation_gates_channels():
    se = SqueezeExcitation(4, 8)
    x = torch.randn(2, 4, 3, 5, 5)
    gate = torch.sigmoid(se.block[2](torch.relu(se.block[0](x.mean(dim=(2, 3, 4), keepdim=True)))))
    torch.testing.assert_close(se(x), x * gate)
    assert ((se(x) / x) - gate).abs().max() < 1e-5


@pytest.mark.parametrize('name', sorted(X3D_SPECS))
def test_pytorchvideo_checkpoint_names_and_shapes(name, pytorchvideo_state_dict):
    model = build_x3d(name)
    state = model.state_dict()
    assert len(state) == PTV_X3D_KEYS[name]
    assert sum(p.numel() for p in model.parameters()) == PTV_X3D_PARAMS[name]
    for key, shape in PTV_X3D_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    for key in ABSENT:
        assert key not in state
    facts = pytorchvideo_state_dict('x3d_l' if name == 'x3d_l' else 'x3d_xs_s_m')
    assert [(k, tuple(v.shape)) for k, v in state.items()] == facts  # every name and shape, in order


def test_parameter_count_is_the_papers():
    # the 3.79 M at 400 classes (Table 4 of the paper: X3D-M 3.8 M), counted on the network built here
    assert round(sum(p.numel() for p in build_x3d('x3d_m').parameters()) / 1e6, 2) == 3.79


def test_state_dict_round_trip_gives_same_logits():
    a, b = build_x3d('x3d_xs').eval(), build_x3d('x3d_xs').eval()
    for p in a.parameters():
        nn.init.normal_(p, std=0.05)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer), strict=True)
    x = _clip()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_clipped_avg_pool():
    x = torch.randn(1, 2, 3, 4, 4)
    torch.testing.assert_close(clipped_avg_pool(x, None), x.mean(dim=(2, 3, 4), keepdim=True))
    torch.testing.assert_close(clipped_avg_pool(x, (16, 7, 7)), x.mean(dim=(2, 3, 4), keepdim=True))
    windows = clipped_avg_pool(x, (3, 3, 3))
    assert windows.shape == (1, 2, 1, 2, 2)
    torch.testing.assert_close(windows[0, :, 0, 1, 0], x[0, :, :, 1:4, 0:3].mean(dim=(1, 2, 3)))


def test_zoo_head_pool_equals_global_pool_at_the_training_size():
    zoo, plain = build_x3d('x3d_xs').eval(), build_x3d('x3d_xs', zoo_head_pool=False).eval()
    plain.load_state_dict(zoo.state_dict())
    x = _clip(frames=4, size=64)  # features 2x2, below the 5x5 window: one window
    with torch.no_grad():
        torch.testing.assert_close(zoo(x), plain(x))


def test_rejects_frames_last_layout():
    with pytest.raises(ValueError, match=r'archs/x3d.py.*\(N, 3, T, H, W\)'):
        build_x3d('x3d_xs')(torch.randn(1, 4, 3, 32, 32))
    with pytest.raises(ValueError, match='x3d_xxl'):
        build_x3d('x3d_xxl')


@pytest.mark.parametrize('name', sorted(ZOO_GMACS))
def test_gmacs_at_the_zoo_inputs(name):
    frames, size, expected = ZOO_GMACS[name]
    with torch.device('meta'):  # shapes only: no memory, no arithmetic
        model, clip = build_x3d(name).eval(), torch.empty(1, 3, frames, size, size)
    with FlopCounterMode(display=False) as counter:
        model(clip)
    assert counter.get_total_flops() / 2e9 == pytest.approx(expected, rel=0.02)


def test_expanded_x2d_with_the_published_factors_is_the_x3d_network():
    from archs.x3d import expanded_x2d
    ours, published = expanded_x2d(2.0, 2.25, 2.2), build_x3d('x3d_xs', zoo_head_pool=False)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in published.state_dict().items()}


def test_expanded_x2d_widths_depths_and_head():
    from archs import build_backbone
    net, layout = build_backbone('x2d', 'scratch', options={'width': 1.0, 'bottleneck': 1.5, 'depth': 0.5,
                                                             'head_width': 64})
    assert net.blocks[0].conv.conv_t.out_channels == 16  # 12 rounded up to a multiple of 8
    assert [len(s.res_blocks) for s in net.blocks[1:5]] == [1, 1, 3, 2]
    assert [s.res_blocks[0].branch2.conv_c.out_channels for s in net.blocks[1:5]] == [16, 24, 48, 96]
    assert net.blocks[2].res_blocks[0].branch2.conv_a.out_channels == 36  # int(1.5 x 24)
    assert net.blocks[5].proj.in_features == 64 == layout.feature_dim and layout.input_size == 112
    with torch.no_grad():
        assert net.eval()(_clip(frames=1, size=32)).shape == (2, 400)
    with pytest.raises(ValueError, match='positive'):
        build_backbone('x2d', 'scratch', options={'depth': 0})
