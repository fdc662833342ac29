"""archs/i3d.py: I3D's inflation keeps a boring video's 2D features; 2D checkpoints of torchvision, ours and TSM map."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from archs.base import walk_layout
from archs.i3d import build_i3d_resnet50, i3d_layout, inflate_conv
from ops.models import TSN
from archs.resnet import resnet_layout
from ops.temporal_shift import insert_temporal_shift


def _random_resnet50(seed: int) -> nn.Module:
    """A torchvision ResNet-50 with random weights and random BatchNorm statistics (so BN is not the identity)."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet50(weights=None)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net


def _features_2d(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision ResNet-50 up to layer4: ``(N, 3, H, W) -> (N, 2048, H/32, W/32)``."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def test_inflate_conv_shape_and_boring_video_identity():
    torch.manual_seed(0)
    w2d = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    w3d = inflate_conv(w2d, 5)
    assert w3d.shape == (6, 4, 5, 3, 3)
    frame = torch.randn(1, 4, 9, 9, dtype=torch.float64)
    clip = frame.unsqueeze(2).expand(1, 4, 5, 9, 9)
    out3d = F.conv3d(clip, w3d, padding=(0, 1, 1))  # a 5-frame kernel on 5 frames: one output frame
    assert torch.allclose(out3d[:, :, 0], F.conv2d(frame, w2d, padding=1), atol=1e-12)
    with pytest.raises(ValueError, match='2D conv weight'):
        inflate_conv(w3d, 3)


def test_inflated_i3d_on_identical_frames_gives_2d_features(tmp_path):
    net2d = _random_resnet50(seed=1).double().eval()
    path = tmp_path / 'resnet50_random.pth'
    torch.save(net2d.state_dict(), path)
    # 'replicate' pads time with the end frames, so the fixed point also holds at the ends of the clip
    model = build_i3d_resnet50(num_classes=3, source=str(path), temporal_padding='replicate').double().eval()
    torch.manual_seed(2)
    frame = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    clip = frame.unsqueeze(2).repeat(1, 1, 8, 1, 1)
    with torch.no_grad():
        feat2d = _features_2d(net2d, frame)
        feat3d = model.features(clip)
    assert feat3d.shape == (1, 2048, 1, 2, 2)  # 8 frames: conv1 /2, pool1 /2, pool2 /2
    for t in range(feat3d.shape[2]):
        assert torch.allclose(feat3d[:, :, t], feat2d, atol=1e-4, rtol=0)
    assert torch.allclose(feat3d.mean(dim=(2, 3, 4)), feat2d.mean(dim=(2, 3)), atol=1e-4, rtol=0)


def test_published_zero_padding_keeps_interior_frames_of_the_stem(tmp_path):
    net2d = _random_resnet50(seed=3).double().eval()
    model = build_i3d_resnet50(num_classes=3, source=net2d).double().eval()  # zeros: mmaction2's padding
    torch.manual_seed(4)
    frame = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        stem3d = model.stem(frame.unsqueeze(2).repeat(1, 1, 16, 1, 1))
        stem2d = net2d.maxpool(net2d.relu(net2d.bn1(net2d.conv1(frame))))
    assert stem3d.shape[2] == 4  # 16 frames / 4: time is shortened in the stem
    with torch.no_grad():  # so the layout's stem shortens time too: the clustering point sees F/4 steps
        assert walk_layout(model, i3d_layout(model), frame.unsqueeze(2).repeat(1, 1, 16, 1, 1))[1][:3] == [4, 4, 2]
    for t in (1, 2, 3):  # output frame 0 sees two zero-padded frames in its 5-frame window
        assert torch.allclose(stem3d[:, :, t], stem2d, atol=1e-6)  # float32 weights: w/5 summed 5 times
    assert not torch.allclose(stem3d[:, :, 0], stem2d, atol=1e-3)


def test_tsm_checkpoint_maps_like_torchvision(tmp_path):
    """Our TSN with TSM's blockres shift (``base_model.layer1.0.conv1.net.weight``) saved as DataParallel."""
    torch.manual_seed(5)
    tsn = TSN(4, 8, 'RGB', base_model='resnet50', pretrain='scratch', is_shift=True, shift_place='blockres',
              dropout=0.5)
    keys = list(tsn.state_dict())
    assert 'base_model.layer1.0.conv1.net.weight' in keys and 'new_fc.weight' in keys
    path = tmp_path / 'tsm_ckpt.pth.tar'
    torch.save({'epoch': 3, 'state_dict': {'module.' + k: v for k, v in tsn.state_dict().items()}}, path)
    from_tsm = build_i3d_resnet50(num_classes=6, source=str(path))

    bm = tsn.base_model
    assert torch.equal(from_tsm.conv1.weight, bm.conv1.weight.unsqueeze(2).repeat(1, 1, 5, 1, 1) / 5)
    assert torch.equal(from_tsm.bn1.running_var, bm.bn1.running_var)
    assert torch.equal(from_tsm.layer2[0].downsample[0].weight, bm.layer2[0].downsample[0].weight.unsqueeze(2))
    assert torch.equal(from_tsm.layer3[4].conv2.weight, bm.layer3[4].conv2.weight.unsqueeze(2))
    assert torch.equal(from_tsm.layer3[4].bn3.bias, bm.layer3[4].bn3.bias)
    w = bm.layer1[0].conv1.net.weight  # (64, 64, 1, 1) in 2D, 3x1x1 in I3D's first block
    assert torch.allclose(from_tsm.layer1[0].conv1.weight, w.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3)
    assert torch.equal(from_tsm.layer4[0].conv1.weight, bm.layer4[0].conv1.net.weight.unsqueeze(2))


def test_block_shift_and_temporal_pool_names_map():
    """TSM's ``block`` shift wraps whole blocks (``layer1.0.net.conv1.weight``), temporal pool wraps layer2."""
    net = _random_resnet50(seed=6)
    insert_temporal_shift(net, resnet_layout(net), 8, place='block', temporal_pool=True)
    state = {'base_model.' + k: v for k, v in net.state_dict().items()}
    assert any('.net.' in k for k in state)
    model = build_i3d_resnet50(num_classes=2, source=state)
    assert torch.equal(model.layer2[1].bn2.running_mean, net.layer2.net[1].net.bn2.running_mean)


def test_wrong_sources_are_refused():
    with pytest.raises(ValueError, match='lacks'):
        build_i3d_resnet50(num_classes=2, source=torchvision.models.resnet18(weights=None).state_dict())
    flow = torchvision.models.resnet50(weights=None).state_dict()
    flow['conv1.weight'] = torch.zeros(64, 10, 7, 7)  # a Flow conv1 of 5 stacked (x, y) pairs
    with pytest.raises(ValueError, match='conv1.weight'):
        build_i3d_resnet50(num_classes=2, source=flow)


def test_stages_run_in_order_are_forward():
    torch.manual_seed(7)
    model = build_i3d_resnet50(num_classes=5).eval()
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        features, steps = walk_layout(model, i3d_layout(model), x)
        h = model.fc(features.flatten(1))  # the layout's classifier; its dropout is the identity in eval
        assert torch.allclose(h, model(x), atol=1e-6)
    assert h.shape == (1, 5)
    assert steps == [2, 2, 1, 1, 1]  # stem /4 in time, layer1 keeps it (the clustering point), pool2 /2


def test_tsn_clusters_i3d_after_layer1_on_a_quarter_of_the_frames():
    """The clustering point of i3d_resnet50 (docs/DESIGN.md §7): 16 frames, stem /4 in time, layer1 keeps it: the
    clustering groups 4 steps into G = 2, and pool2 halves those before layer2."""
    torch.manual_seed(8)
    model = TSN(4, 2, 'RGB', base_model='i3d_resnet50', pretrain='scratch', cluster='uniform', num_frames=16).eval()
    seen = {}
    model.clustering.register_forward_pre_hook(lambda m, args, kwargs: seen.update(steps=kwargs['num_frames']),
                                               with_kwargs=True)
    model.base_model.layer2.register_forward_pre_hook(lambda m, args: seen.update(layer2=args[0].shape[2]))
    with torch.no_grad():
        assert model(torch.randn(1, 16 * 3, 32, 32)).shape == (1, 4)
    assert seen == {'steps': 4, 'layer2': 1}
