"""archs/__init__.py and archs/base.py: the backbone registry and the seam's helpers."""
import pytest
import torch
import torch.nn as nn

import opts
from archs import BACKBONES, arch_names, build_backbone
from archs.base import replace_module, run_modules, stage_number


def test_the_registry_gives_the_arch_choices():
    assert set(arch_names()) >= {'resnet18', 'resnet34', 'resnet50', 'resnet101', 'mobilenetv2'}
    assert opts.build_parser().parse_args(['ucf101', 'RGB', '--arch', 'mobilenetv2']).arch == 'mobilenetv2'


def test_an_unknown_backbone_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown --arch 'vgg16'.*resnet18"):
        build_backbone('vgg16', 'scratch')


@pytest.mark.parametrize('arch', ['resnet18', 'mobilenetv2'])
def test_stem_stages_and_head_are_the_networks_own_forward(arch):
    torch.manual_seed(0)
    net, layout = build_backbone(arch, 'scratch')
    net.eval()
    x = torch.randn(2, 3, 64, 64)
    y = run_modules(net, layout.stem, x)
    for paths in layout.stages:
        y = run_modules(net, paths, y)
    y = torch.flatten(run_modules(net, layout.head, y), 1)
    with torch.no_grad():
        assert torch.allclose(net.get_submodule(layout.classifier)(y), net(x), atol=1e-5)
    assert y.shape == (2, layout.feature_dim)
    assert isinstance(net.get_submodule(layout.first_conv), nn.Conv2d)


def test_a_new_backbone_is_one_builder_and_one_registry_line(monkeypatch):
    """A toy backbone registered in the test alone trains through TSN with a clustering after its stage 1."""
    from archs.base import Layout
    from ops.models import TSN

    def build(pretrain='imagenet', zero_init_residual=False):
        net = nn.Sequential()
        net.add_module('stem', nn.Conv2d(3, 8, 3, 2, 1))
        net.add_module('s1', nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU()))
        net.add_module('s2', nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU()))
        net.add_module('pool', nn.AdaptiveAvgPool2d(1))
        net.add_module('fc', nn.Linear(16, 10))
        return net, Layout(stem=['stem'], stages=[['s1'], ['s2']], stage_names=['s1', 's2'], head=['pool'],
                           classifier='fc', feature_dim=16, first_conv='stem',
                           shift_sites={'blockres': [['s1.0'], ['s2.0']]})

    monkeypatch.setitem(BACKBONES, 'toy', build)
    model = TSN(3, 2, 'RGB', base_model='toy', pretrain='scratch', is_shift=True, cluster='uniform', num_frames=6)
    out = model(torch.randn(4, 6 * 3, 16, 16))
    out.sum().backward()
    assert out.shape == (4, 3) and model.base_model.s1[0].net.weight.grad is not None
    with pytest.raises(ValueError, match='2 stages'):
        TSN(3, 2, 'RGB', base_model='toy', pretrain='scratch', cluster='uniform', num_frames=6, cluster_after=2)


def test_stage_numbers_take_numbers_and_names():
    assert [stage_number(v) for v in (1, '2', 'layer3', 'stage1')] == [1, 2, 3, 1]
    for bad in ('0', 'layer', 'conv1', -1):
        with pytest.raises(ValueError, match='not a stage'):
            stage_number(bad)


def test_replace_module_puts_a_module_at_a_dotted_path():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU()))
    replace_module(net, '0.1', nn.Identity())
    assert isinstance(net[0][1], nn.Identity)
    replace_module(net, '0', nn.Tanh())
    assert isinstance(net[0], nn.Tanh)


def test_backbone_options_reach_the_builder_that_takes_them():
    from archs import backbone_option_names
    with torch.device('meta'):
        net, layout = build_backbone('slowfast_r50', 'scratch', options={'alpha': 8})
    assert net.alpha == 8 and layout.pathways == 2
    assert backbone_option_names('slowfast_r50') == ['alpha', 'fusion_kernel', 'slow_frames']
    with torch.device('meta'):
        assert build_backbone('slowfast_r50', 'scratch', options={'slow_frames': 'linspace'})[0].pathways.slow_frames \
            == 'linspace'
    with pytest.raises(ValueError, match="--arch resnet18 takes no backbone option alpha"):
        build_backbone('resnet18', 'scratch', options={'alpha': 8})
