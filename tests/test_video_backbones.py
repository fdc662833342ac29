"""archs/video_torchvision.py and archs/c3d.py: shapes, layouts, costs, Kinetics-400 loading, C3D names."""
import urllib.error

import pytest
import torch
import torch.hub
from torch.utils.flop_counter import FlopCounterMode

from archs.base import walk_layout
from archs.c3d import build_c3d, c3d_layout
from archs.video_torchvision import VIDEO_MODELS, build_video_model, kinetics_weights_file, video_layout

# torchvision's published costs (GFLOPS column of its model table, multiply-adds) per 16-frame clip
PUBLISHED_GMACS = {'r3d_18': (112, 40.70), 'mc3_18': (112, 43.34), 'r2plus1d_18': (112, 40.52), 's3d': (224, 17.98)}
# smallest clips the models take: S3D halves time three times and ends in a 2-frame pool in torchvision
TINY_CLIP = {'r3d_18': (4, 32), 'mc3_18': (4, 32), 'r2plus1d_18': (4, 32), 's3d': (8, 32)}
# where time is first shortened, 0 = the stem, i = stage i (None: kept to the head); read in torchvision's sources
FIRST_TEMPORAL_DOWNSAMPLE = {'r3d_18': 2, 'mc3_18': None, 'r2plus1d_18': 2, 's3d': 0}


def classifier_input(net: torch.nn.Module, layout, x: torch.Tensor) -> torch.Tensor:
    """What ``net``'s own forward feeds the layout's classifier, flattened: ``(M, feature_dim)``."""
    seen = []
    handle = net.get_submodule(layout.classifier).register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    try:
        net(x)
    finally:
        handle.remove()
    return seen[0].flatten(1)


def _first_shortening(t: int, steps: list):
    """0 = the stem shortens time, i = stage i does, None = time is kept to the head."""
    lengths = [t] + steps
    shortened = [i for i in range(len(steps)) if lengths[i + 1] < lengths[i]]
    return shortened[0] if shortened else None


def _gmacs(model: torch.nn.Module, shape: tuple) -> float:
    """Multiply-adds (torch's FLOP counter / 2) of one forward, on the meta device (no arithmetic is run)."""
    with torch.device('meta'):
        x = torch.empty(shape)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2 / 1e9


@pytest.mark.parametrize('name', VIDEO_MODELS)
def test_shapes_stages_and_temporal_downsampling(name):
    torch.manual_seed(0)
    model = build_video_model(name, num_classes=5).eval()
    layout = video_layout(name, model)
    t, s = TINY_CLIP[name]
    x = torch.randn(2, 3, t, s, s)
    with torch.no_grad():
        logits = model(x)
        features, steps = walk_layout(model, layout, x)
        expected = classifier_input(model, layout, x)
    assert logits.shape == (2, 5)
    assert features.flatten(1).shape == (2, layout.feature_dim)
    assert torch.allclose(features.flatten(1), expected, atol=1e-6), \
        "the layout's stem, stages and head run in order must be the model's forward up to its classifier"
    assert _first_shortening(t, steps) == FIRST_TEMPORAL_DOWNSAMPLE[name], steps


@pytest.mark.parametrize('name', VIDEO_MODELS)
def test_gmacs_match_torchvision_published(name):
    size, published = PUBLISHED_GMACS[name]
    with torch.device('meta'):
        model = build_video_model(name, num_classes=400).eval()
    assert abs(_gmacs(model, (1, 3, 16, size, size)) - published) / published < 0.01


def test_kinetics400_loads_from_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', _no_network)
    torch.manual_seed(1)
    import torchvision.models.video as tvv
    saved = tvv.s3d(weights=None).state_dict()
    folder = tmp_path / 'hub' / 'checkpoints'
    folder.mkdir(parents=True)
    torch.save(saved, folder / 's3d-d76dad2f.pth')  # torchvision's S3D_Weights.KINETICS400_V1 url ends so
    model = build_video_model('s3d', num_classes=7, pretrain='kinetics400')
    own = model.state_dict()
    for key, value in saved.items():
        if not key.startswith('classifier.'):
            assert torch.equal(own[key], value), key
    assert own['classifier.1.weight'].shape[0] == 7


def _no_network(*args, **kwargs):
    raise urllib.error.URLError('no network in this test')


def test_kinetics400_without_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', _no_network)
    with pytest.raises(RuntimeError) as err:
        build_video_model('r3d_18', num_classes=5, pretrain='kinetics400')
    assert 'r3d_18-b3b3357e.pth' in str(err.value) and 'hub/checkpoints' in str(err.value)
    assert kinetics_weights_file('r3d_18') == 'r3d_18-b3b3357e.pth'


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match='unknown --arch'):
        build_video_model('r3d_50', 5)
    with pytest.raises(ValueError, match='--pretrain'):
        build_video_model('r3d_18', 5, pretrain='imagenet')


# the common port of the Sports-1M weights (c3d.pickle): every parameter name, in order
C3D_PORT_KEYS = [f'{layer}.{p}' for layer in ('conv1', 'conv2', 'conv3a', 'conv3b', 'conv4a', 'conv4b', 'conv5a',
                                               'conv5b', 'fc6', 'fc7', 'fc8') for p in ('weight', 'bias')]


def test_c3d_names_and_published_shapes():
    with torch.device('meta'):
        model = build_c3d(num_classes=487).eval()
        out = model(torch.empty(2, 3, 16, 112, 112))
    assert list(model.state_dict()) == C3D_PORT_KEYS
    assert out.shape == (2, 487)
    assert model.fc6.in_features == 8192 and model.fc7.out_features == 4096
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    # Tran et al. report 38.5 G (multiply-adds) per 16x112x112 clip
    assert abs(_gmacs(model, (1, 3, 16, 112, 112)) - 38.5) / 38.5 < 0.01


def test_c3d_port_state_dict_loads_by_name():
    channels = [('conv1', 3, 64), ('conv2', 64, 128), ('conv3a', 128, 256), ('conv3b', 256, 256),
                ('conv4a', 256, 512), ('conv4b', 512, 512), ('conv5a', 512, 512), ('conv5b', 512, 512)]
    port = {}  # distinct constants per tensor: cheaper than 78M random numbers, still tells tensors apart
    for i, (name, cin, cout) in enumerate(channels):
        port[f'{name}.weight'] = torch.full((cout, cin, 3, 3, 3), float(i))
        port[f'{name}.bias'] = torch.full((cout,), -float(i))
    for i, (name, cin, cout) in enumerate((('fc6', 8192, 4096), ('fc7', 4096, 4096), ('fc8', 4096, 487)), 10):
        port[f'{name}.weight'], port[f'{name}.bias'] = torch.full((cout, cin), float(i)), torch.full((cout,), -float(i))
    with torch.device('meta'):
        model = build_c3d(num_classes=487)
    model.load_state_dict(port, strict=True, assign=True)  # strict: every name and shape must match
    assert torch.equal(model.conv3b.weight, port['conv3b.weight'])
    assert torch.equal(model.fc7.bias, port['fc7.bias'])


def test_c3d_wrong_clip_size_names_the_cause():
    with torch.device('meta'):
        model = build_c3d(num_classes=4)
        with pytest.raises(ValueError, match='16x112x112'):
            model(torch.empty(1, 3, 16, 128, 128))


def test_c3d_tiny_clip_and_stages():
    torch.manual_seed(3)
    model = build_c3d(num_classes=4, adaptive_pool=True).eval()
    layout = c3d_layout(model)
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        logits = model(x)
        features, steps = walk_layout(model, layout, x)
        expected = classifier_input(model, layout, x)
    assert logits.shape == (2, 4)
    assert torch.allclose(features, expected, atol=1e-6)
    assert steps[1] == 8 and steps[2] == 4  # pool1 keeps time (stage 1), pool2 halves it (stage 2)
    assert _first_shortening(8, steps) == 2
