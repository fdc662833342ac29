"""Tests of ops/transforms.py: one random draw per clip, shapes and values of the Group* transforms."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from ops import transforms as T


def noise_frame(seed: int, size=(40, 30), mode='RGB') -> Image.Image:
    """A frame with no symmetry, so crops and flips are recognisable."""
    rng = np.random.RandomState(seed)
    shape = (size[1], size[0], 3) if mode == 'RGB' else (size[1], size[0])
    return Image.fromarray(rng.randint(0, 256, shape, dtype=np.uint8), mode)


def arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(int)


def test_train_augmentation_keeps_identical_frames_identical():
    frame = noise_frame(0, (80, 60))
    for seed in range(30):
        random.seed(seed)
        out = T.train_augmentation(32, flip=True)([frame.copy() for _ in range(5)])
        assert all(img.size == (32, 32) for img in out)
        assert all(np.array_equal(arr(out[0]), arr(img)) for img in out[1:])


def test_flip_applies_to_all_frames_or_none():
    frames = [noise_frame(s) for s in range(4)]
    mirrored = [arr(f)[:, ::-1] for f in frames]
    outcomes = set()
    for seed in range(40):
        random.seed(seed)
        out = T.GroupRandomHorizontalFlip()(frames)
        flipped = [np.array_equal(arr(o), m) for o, m in zip(out, mirrored)]
        kept = [np.array_equal(arr(o), arr(f)) for o, f in zip(out, frames)]
        assert all(flipped) or all(kept)
        outcomes.add(all(flipped))
    assert outcomes == {True, False}


def test_flow_flip_inverts_x_only():
    x, y = noise_frame(1, mode='L'), noise_frame(2, mode='L')
    random.seed(0)
    while True:  # draw until a flip happens
        out = T.GroupRandomHorizontalFlip(is_flow=True)([x, y])
        if not np.array_equal(arr(out[1]), arr(y)):
            break
    assert np.array_equal(arr(out[0]), 255 - arr(x)[:, ::-1])
    assert np.array_equal(arr(out[1]), arr(y)[:, ::-1])


def test_random_crop_same_window_for_every_frame():
    base = noise_frame(3, (50, 40))
    frames = [Image.fromarray((arr(base) + k).clip(0, 255).astype(np.uint8)) for k in (0, 40, 80)]
    for seed in range(10):
        random.seed(seed)
        out = T.GroupRandomCrop(20)(frames)
        # locate frame 0's window in the base; all others must come from the same window
        a = arr(out[0])
        hits = [(x, y) for y in range(21) for x in range(31) if np.array_equal(arr(base)[y:y + 20, x:x + 20], a)]
        assert len(hits) == 1
        x, y = hits[0]
        for img, f in zip(out, frames):
            assert np.array_equal(arr(img), arr(f)[y:y + 20, x:x + 20])
    with pytest.raises(ValueError, match='larger'):
        T.GroupRandomCrop(60)(frames)


def test_center_crop_and_scale():
    img = noise_frame(4, (40, 30))
    out = T.GroupCenterCrop(20)([img])[0]
    assert np.array_equal(arr(out), arr(img)[5:25, 10:30])
    assert T.GroupScale(15)([img])[0].size == (20, 15)
    assert T.GroupScale(15)([img.transpose(Image.Transpose.TRANSPOSE)])[0].size == (15, 20)
    assert T.val_transform(15, 12)([img, img])[1].size == (12, 12)


def test_multiscale_crop_draws_tsn_crops():
    img = noise_frame(5, (80, 60))
    crop = T.GroupMultiScaleCrop(32)
    sizes = set()
    for seed in range(50):
        random.seed(seed)
        cw, ch, ow, oh = crop._sample_crop_size(img.size)
        sizes.add((cw, ch))
        assert (ow, oh) in T.GroupMultiScaleCrop.fill_fix_offset(True, 80, 60, cw, ch)
        assert ow + cw <= 80 and oh + ch <= 60
    allowed = {int(60 * s) for s in T.MULTISCALE}
    assert all(cw in allowed and ch in allowed for cw, ch in sizes) and len(sizes) > 3
    assert len(T.GroupMultiScaleCrop.fill_fix_offset(False, 80, 60, 40, 40)) == 5


@pytest.mark.parametrize('cls, flip, crops', [(T.GroupOverSample, True, 10), (T.GroupOverSample, False, 5),
                                              (T.GroupFullResSample, True, 6), (T.GroupFullResSample, False, 3)])
def test_multi_crop_testing(cls, flip, crops):
    frames = [noise_frame(s, (64, 48)) for s in range(3)]
    out = cls(32, scale_size=40, flip=flip)(frames)
    assert len(out) == crops * 3 and all(img.size == (32, 32) for img in out)
    if flip:  # crop group then its mirror, frame by frame
        assert np.array_equal(arr(out[3]), arr(out[0])[:, ::-1])


def test_stack_and_tensor_are_frame_major():
    frames = [Image.new('RGB', (4, 3), (10 * k, 10 * k + 1, 10 * k + 2)) for k in range(3)]
    x = T.ToTorchFormatTensor()(T.Stack()(frames))
    assert x.shape == (9, 3, 4) and x.dtype == torch.float32
    assert (x[:, 0, 0] * 255).round().tolist() == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    rolled = T.ToTorchFormatTensor(div=False)(T.Stack(roll=True)(frames))
    assert rolled[:3, 0, 0].tolist() == [2, 1, 0]
    gray = T.ToTorchFormatTensor()(T.Stack()([Image.new('L', (4, 3), v) for v in (0, 255)]))
    assert gray.shape == (2, 3, 4) and gray[1].eq(1).all()
    with pytest.raises(ValueError):
        T.Stack()([Image.new('L', (4, 3)), Image.new('RGB', (4, 3))])


def test_normalize_repeats_mean_over_frames():
    x = torch.ones(6, 2, 2)
    out = T.normalize([0.5, 0.25, 0.0], [0.5, 0.25, 1.0])(x)
    assert out[:, 0, 0].tolist() == [1.0, 3.0, 1.0, 1.0, 3.0, 1.0]
    assert T.GroupNormalize([0.5], [0.5])(torch.zeros(4, 1, 1)).eq(-1).all()
    with pytest.raises(ValueError):
        T.GroupNormalize([0.5, 0.5, 0.5], [1, 1, 1])(torch.zeros(4, 1, 1))


def test_full_pipeline_shape_and_identity():
    frames = [noise_frame(s, (64, 48)) for s in range(4)]
    pipe = T.train_augmentation(32, flip=False)
    x = T.normalize([.485, .456, .406], [.229, .224, .225])(T.ToTorchFormatTensor()(T.Stack()(pipe(frames))))
    assert x.shape == (12, 32, 32)
    assert T.IdentityTransform()(frames) is frames
    assert len(T.train_augmentation(32, flip=False).transforms) == 1
    assert T.train_decode_size(224) == 340


def test_default_scale_size_is_tsms_resize_then_crop_ratio():
    assert T.default_scale_size(224) == 256 and T.default_scale_size(112) == 128
    assert T.default_scale_size(32) == 36  # 36.6 rounded down
