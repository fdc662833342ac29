"""ops/runtime.py: evaluation frames resized at load only for our own transform; the lr schedule's warm-up; the
model's initialisation; the Flow crop's flip."""
import math

import pytest
import torch

import ops.dataset
import opts
from ops.dataset_config import return_dataset
from builder import build_dataset, build_model


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
