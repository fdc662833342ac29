"""Group transforms: TSN/TSM augmentation applied to the frames of one clip.

Every transform takes the list of PIL images of one clip (for Flow: ``[x0, y0, x1, y1, ...]``)
and makes ONE random draw per call, applied to every frame, so a clip stays temporally
consistent. ``Stack`` + ``ToTorchFormatTensor`` turn the list into a float tensor
``(T*C, H, W)``; ``GroupNormalize`` works on that tensor.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import torch
import torchvision
from PIL import Image, ImageOps

Size = int | tuple[int, int]
MULTISCALE = (1, .875, .75, .66)  # TSN's crop scales, relative to the short side


def _pair(size: Size) -> tuple[int, int]:
    """``(w, h)`` from an int or a ``(w, h)`` pair."""
    return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))


def _check_fits(img_group: Sequence[Image.Image], crop_w: int, crop_h: int) -> tuple[int, int]:
    """Size ``(w, h)`` of the clip; raises if the frames differ in size or are smaller than the crop."""
    w, h = img_group[0].size
    if any(img.size != (w, h) for img in img_group):
        raise ValueError(f'frames of one clip differ in size: {sorted({img.size for img in img_group})}')
    if crop_w > w or crop_h > h:
        raise ValueError(f'crop {crop_w}x{crop_h} is larger than the frames ({w}x{h}); resize them first')
    return w, h


def _flip(img_group: Sequence[Image.Image], is_flow: bool) -> list[Image.Image]:
    """Mirror every frame; for flow the x components (even positions) change sign, i.e. invert."""
    out = [img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for img in img_group]
    if is_flow:
        out = [ImageOps.invert(img) if i % 2 == 0 else img for i, img in enumerate(out)]
    return out


class GroupRandomCrop:
    """Crop the same random ``size`` window (int or ``(w, h)``) out of every frame."""

    def __init__(self, size: Size):
        self.size = _pair(size)

    def __call__(self, img_group: list[Image.Image]) -> list[Image.Image]:
        tw, th = self.size
        w, h = _check_fits(img_group, tw, th)
        x1, y1 = random.randint(0, w - tw), random.randint(0, h - th)
        return [img.crop((x1, y1, x1 + tw, y1 + th)) for img in img_group]


class GroupCenterCrop:
    """Crop the central ``size`` window (int or ``(w, h)``) of every frame."""

    def __init__(self, size: Size):
        self.size = _pair(size)

    def __call__(self, img_group: list[Image.Image]) -> list[Image.Image]:
        tw, th = self.size
        w, h = _check_fits(img_group, tw, th)
        x1, y1 = int(round((w - tw) / 2.0)), int(round((h - th) / 2.0))
        return [img.crop((x1, y1, x1 + tw, y1 + th)) for img in img_group]


class GroupRandomHorizontalFlip:
    """Mirror all frames of a clip or none, with probability 0.5; flow x images are inverted."""

    def __init__(self, is_flow: bool = False):
        self.is_flow = is_flow

    def __call__(self, img_group: list[Image.Image]) -> list[Image.Image]:
        return _flip(img_group, self.is_flow) if random.random() < 0.5 else img_group


class GroupNormalize:
    """``(T*C, H, W) -> (T*C, H, W)``: subtract ``mean``, divide by ``std``, per channel of each frame.

    ``mean``/``std`` have C entries (3 for RGB, 1 for flow) and are repeated over the T frames.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = list(mean), list(std)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        c = len(self.mean)
        if tensor.size(0) % c:
            raise ValueError(f'{tensor.size(0)} channels are not a multiple of the {c} normalisation channels')
        reps = tensor.size(0) // c
        mean = tensor.new_tensor(self.mean).repeat(reps).view(-1, 1, 1)
        std = tensor.new_tensor(self.std).repeat(reps).view(-1, 1, 1)
        return (tensor - mean) / std


def short_side_size(w: int, h: int, size: int) -> tuple[int, int]:
    """``(w, h)`` with the short side resized to ``size``, the long one rounded down (TSM's GroupScale)."""
    return (size, int(size * h / w)) if w <= h else (int(size * w / h), size)


class GroupScale:
    """Resize every frame so that its short side is ``size`` (aspect kept), or to ``(w, h)``."""

    def __init__(self, size: Size, interpolation: int = Image.Resampling.BILINEAR):
        self.size = size
        self.interpolation = interpolation

    def _target(self, w: int, h: int) -> tuple[int, int]:
        if not isinstance(self.size, (int, float)):
            return _pair(self.size)
        return short_side_size(w, h, int(self.size))

    def __call__(self, img_group: list[Image.Image]) -> list[Image.Image]:
        out = []
        for img in img_group:
            target = self._target(*img.size)
            out.append(img if img.size == target else img.resize(target, self.interpolation))
        return out


def _multi_crop(img_group: list[Image.Image], crop_size: Size, offsets: list[tuple[int, int]],
                flip: bool) -> list[Image.Image]:
    """For each offset the crops of all frames, then (``flip``) their mirrors; crops concatenated.

    As TSM, images of mode 'L' at even positions are taken for flow x and inverted when mirrored.
    """
    crop_w, crop_h = _pair(crop_size)
    is_flow = img_group[0].mode == 'L'
    out: list[Image.Image] = []
    for o_w, o_h in offsets:
        crops = [img.crop((o_w, o_h, o_w + crop_w, o_h + crop_h)) for img in img_group]
        out.extend(crops)
        if flip:
            out.extend(_flip(crops, is_flow))
    return out


class _MultiViewSample:
    """Several fixed crops of every frame (and their mirrors), after an optional resize of the short side."""

    def __init__(self, crop_size: Size, scale_size: int | None = None, flip: bool = True):
        self.crop_size = _pair(crop_size)
        self.scale = GroupScale(scale_size) if scale_size is not None else None
        self.flip = flip

    def offsets(self, w: int, h: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    def __call__(self, img_group: list[Image.Image]) -> list[Image.Image]:
        if self.scale is not None:
            img_group = self.scale(img_group)
        w, h = _check_fits(img_group, *self.crop_size)
        return _multi_crop(img_group, self.crop_size, self.offsets(w, h), self.flip)


class GroupOverSample(_MultiViewSample):
    """10-crop testing: 4 corners + centre (and their mirrors); ``T`` frames -> ``(5 or 10) * T``."""

    def offsets(self, w: int, h: int) -> list[tuple[int, int]]:
        return GroupMultiScaleCrop.fill_fix_offset(False, w, h, *self.crop_size)


class GroupFullResSample(_MultiViewSample):
    """3-crop testing: left, right, centre along the long side (and mirrors); ``T`` -> ``(3 or 6) * T``."""

    def offsets(self, w: int, h: int) -> list[tuple[int, int]]:
        crop_w, crop_h = self.crop_size
        w_step, h_step = (w - crop_w) // 4, (h - crop_h) // 4
        return [(0, 2 * h_step), (4 * w_step, 2 * h_step), (2 * w_step, 2 * h_step)]


class GroupMultiScaleCrop:
    """TSN's corner/centre multi-scale crop, resized to ``input_size``; one draw for the whole clip.

    Crop width and height are drawn from ``scales`` x short side (at most ``max_distort`` scale
    steps apart); the position is one of 5 (13 with ``more_fix_crop``) fixed offsets when
    ``fix_crop``, else uniform.
    """

    def __init__(self, input_size: Size, scales: Sequence[float] | None = None, max_distort: int = 1,
                 fix_crop: bool = True, more_fix_crop: bool = True):
        self.scales = list(scales) if scales is not None else list(MULTISCALE)
        self.max_distort = max_distort
        self.fix_crop = fix_crop
        self.more_fix_crop = more_fix_crop
        self.input_size = _pair(input_size)
        self.interpolation = Image.Resampling.BILINEAR

    def __call__(self, img_group: list[Image.Image]) -> list[Image.Image]:
        w, h = _check_fits(img_group, 1, 1)
        crop_w, crop_h, o_w, o_h = self._sample_crop_size((w, h))
        box = (o_w, o_h, o_w + crop_w, o_h + crop_h)
        return [img.crop(box).resize(self.input_size, self.interpolation) for img in img_group]

    def _sample_crop_size(self, im_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """One random ``(crop_w, crop_h, offset_w, offset_h)``."""
        image_w, image_h = im_size
        base = min(image_w, image_h)
        sizes = [int(base * s) for s in self.scales]
        # sizes within 3 px of the target snap to it, as TSN, so no needless resize happens
        crop_h = [self.input_size[1] if abs(x - self.input_size[1]) < 3 else x for x in sizes]
        crop_w = [self.input_size[0] if abs(x - self.input_size[0]) < 3 else x for x in sizes]
        pairs = [(cw, ch) for i, ch in enumerate(crop_h) for j, cw in enumerate(crop_w)
                 if abs(i - j) <= self.max_distort and cw <= image_w and ch <= image_h]
        if not pairs:
            raise ValueError(f'no crop of scales {self.scales} fits frames of {image_w}x{image_h}')
        cw, ch = random.choice(pairs)
        if self.fix_crop:
            o_w, o_h = random.choice(self.fill_fix_offset(self.more_fix_crop, image_w, image_h, cw, ch))
        else:
            o_w, o_h = random.randint(0, image_w - cw), random.randint(0, image_h - ch)
        return cw, ch, o_w, o_h

    @staticmethod
    def fill_fix_offset(more_fix_crop: bool, image_w: int, image_h: int, crop_w: int,
                        crop_h: int) -> list[tuple[int, int]]:
        """TSN's fixed crop positions: corners and centre, plus 8 more with ``more_fix_crop``."""
        w_step, h_step = (image_w - crop_w) // 4, (image_h - crop_h) // 4
        ret = [(0, 0), (4 * w_step, 0), (0, 4 * h_step), (4 * w_step, 4 * h_step), (2 * w_step, 2 * h_step)]
        if more_fix_crop:
            ret += [(0, 2 * h_step), (4 * w_step, 2 * h_step), (2 * w_step, 4 * h_step), (2 * w_step, 0),
                    (w_step, h_step), (3 * w_step, h_step), (w_step, 3 * h_step), (3 * w_step, 3 * h_step)]
        return ret


class Stack:
    """List of T PIL images -> uint8 array ``(H, W, T*C)``; ``roll`` turns RGB into BGR (BNInception)."""

    def __init__(self, roll: bool = False):
        self.roll = roll

    def __call__(self, img_group: list[Image.Image]) -> np.ndarray:
        modes = {img.mode for img in img_group}
        if modes == {'L'}:
            return np.stack([np.asarray(img) for img in img_group], axis=2)
        if modes == {'RGB'}:
            arrays = [np.asarray(img) for img in img_group]
            if self.roll:
                arrays = [a[:, :, ::-1] for a in arrays]
            return np.concatenate(arrays, axis=2)
        raise ValueError(f"Stack takes frames all of mode 'L' or all 'RGB', got {sorted(modes)}")


class ToTorchFormatTensor:
    """Array ``(H, W, C)`` or PIL image in [0, 255] -> float tensor ``(C, H, W)``, in [0, 1] if ``div``."""

    def __init__(self, div: bool = True):
        self.div = div

    def __call__(self, pic: np.ndarray | Image.Image) -> torch.Tensor:
        arr = np.asarray(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        img = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float()
        return img.div(255) if self.div else img


class IdentityTransform:
    """Returns its input."""

    def __call__(self, data):
        return data


def train_augmentation(input_size: int, flip: bool = True, is_flow: bool = False,
                       scales: Sequence[float] | None = None) -> torchvision.transforms.Compose:
    """TSM's training crop: multi-scale crop to ``input_size``, then (``flip``) a random mirror.

    Pass ``flip=False`` for direction-sensitive data sets (Something-Something, Move4MNIST).
    Flow uses scales (1, .875, .75) as TSM when ``scales`` is not given.
    """
    if scales is None:
        scales = MULTISCALE[:3] if is_flow else MULTISCALE
    steps = [GroupMultiScaleCrop(input_size, scales)]
    if flip:
        steps.append(GroupRandomHorizontalFlip(is_flow=is_flow))
    return torchvision.transforms.Compose(steps)


def default_scale_size(crop_size: int) -> int:
    """TSM's resize-then-crop ratio: the evaluation short side for a ``crop_size`` crop (256 for 224)."""
    return crop_size * 256 // 224


def val_transform(scale_size: int, input_size: int) -> torchvision.transforms.Compose:
    """Evaluation crop: resize the short side to ``scale_size``, take the central ``input_size`` crop."""
    return torchvision.transforms.Compose([GroupScale(int(scale_size)), GroupCenterCrop(input_size)])


def normalize(mean: Sequence[float], std: Sequence[float]) -> GroupNormalize:
    """``GroupNormalize(mean, std)`` for the stacked ``(T*C, H, W)`` tensor."""
    return GroupNormalize(mean, std)


def train_decode_size(input_size: int, scales: Sequence[float] = MULTISCALE) -> int:
    """Smallest short side a frame needs so the smallest multi-scale crop is not upsampled.

    Pass it as ``VideoDataset(decode_size=...)`` to let large JPEGs decode at reduced size.
    """
    return int(math.ceil(input_size / min(scales)))
