"""ops/runtime.py: the data sets a run builds resize evaluation frames at load, and only for our own transform."""
import ops.dataset
import opts
from ops.dataset_config import return_dataset
from ops.runtime import build_dataset, build_model


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


def test_flow_training_flip_inverts_the_x_images():
    """A mirrored flow stack must also negate x (TSN): x' = 255 - x, y unchanged."""
    import random
    from types import SimpleNamespace

    from PIL import Image

    from ops.runtime import build_transform
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
