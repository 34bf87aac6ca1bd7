"""Image transforms, written with Pillow and NumPy: the evaluation transform the exported graphs expect,
and the training augmentations.

Every transform returns uint8 [H, W, 3] RGB, the graphs' input; mean/std are applied later (inside the
ONNX graph when serving, by :func:`to_model_input` when training). Augmentations draw from a generator
seeded by (seed, epoch, sample index), so a sample's augmentation does not depend on worker processes,
batch composition or where a resumed run restarted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from service.bundle import Preprocessing

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

ImageTransform = Callable[[Image.Image], np.ndarray]


def shorter_side_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(width, height) with the shorter side scaled to ``shorter``; the longer side is truncated,
    as torchvision's ``Resize(int)`` does."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def center_crop_box(width: int, height: int, crop_h: int, crop_w: int) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of a centre crop, offsets rounded as torchvision does."""
    left = round((width - crop_w) / 2.0)
    top = round((height - crop_h) / 2.0)
    return left, top, left + crop_w, top + crop_h


def eval_transform(preprocessing: Preprocessing) -> ImageTransform:
    """The evaluation transform: RGB, resize with the given filter (exact, or shorter side then centre
    crop), as uint8 [H, W, 3]. The service implements the same steps; a test compares the two."""
    height, width = preprocessing.input_size
    resample = FILTERS[preprocessing.interpolation]

    def transform(image: Image.Image) -> np.ndarray:
        image = image.convert("RGB")
        if preprocessing.resize == "exact":
            image = image.resize((width, height), resample=resample)
        else:
            assert preprocessing.resize_size is not None
            size = shorter_side_size(image.width, image.height, preprocessing.resize_size)
            image = image.resize(size, resample=resample)
            image = image.crop(center_crop_box(image.width, image.height, height, width))
        return np.asarray(image, dtype=np.uint8)

    return transform


def random_affine(
    preprocessing: Preprocessing, rotate: float, translate: float, scale: tuple[float, float] = (0.9, 1.1)
) -> Callable[[Image.Image, np.random.Generator], np.ndarray]:
    """Digits: the evaluation transform, then a small random rotation, scaling and translation (no flips:
    a mirrored 2 is not a 2). ``translate`` is a fraction of the image side; the fill is black."""
    base = eval_transform(preprocessing)
    height, width = preprocessing.input_size

    def transform(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
        pixels = Image.fromarray(base(image))
        angle = math.radians(rng.uniform(-rotate, rotate))
        factor = rng.uniform(*scale)
        shift_x, shift_y = rng.uniform(-translate, translate, size=2) * (width, height)
        # PIL's AFFINE maps output to input coordinates: invert rotate-scale about the centre, then shift.
        cos, sin = math.cos(angle) / factor, math.sin(angle) / factor
        cx, cy = width / 2.0, height / 2.0
        a, b, d, e = cos, sin, -sin, cos
        c = cx - a * (cx + shift_x) - b * (cy + shift_y)
        f = cy - d * (cx + shift_x) - e * (cy + shift_y)
        warped = pixels.transform(
            (width, height), Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BILINEAR
        )
        return np.asarray(warped, dtype=np.uint8)

    return transform


def random_flip(preprocessing: Preprocessing) -> Callable[[Image.Image, np.random.Generator], np.ndarray]:
    """The evaluation transform, mirrored left-right half of the time: the mildest photo augmentation,
    for short fine-tunes where cropping costs more signal than it adds variety."""
    base = eval_transform(preprocessing)

    def transform(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
        pixels = base(image)
        return np.ascontiguousarray(pixels[:, ::-1]) if rng.random() < 0.5 else pixels

    return transform


def random_resized_crop(
    preprocessing: Preprocessing, scale_min: float, flip: bool = True
) -> Callable[[Image.Image, np.random.Generator], np.ndarray]:
    """Photos: Inception-style random resized crop (area ``scale_min``..1, aspect 3/4..4/3) and a random
    horizontal flip, resized to the input size with the evaluation filter."""
    height, width = preprocessing.input_size
    resample = FILTERS[preprocessing.interpolation]

    def transform(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
        image = image.convert("RGB")
        box = _crop_box(image.width, image.height, scale_min, rng)
        image = image.resize((width, height), resample=resample, box=box)
        if flip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.asarray(image, dtype=np.uint8)

    return transform


def _crop_box(
    width: int, height: int, scale_min: float, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(scale_min, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = math.sqrt(target * aspect)
        h = math.sqrt(target / aspect)
        if w <= width and h <= height:
            left = rng.uniform(0, width - w)
            top = rng.uniform(0, height - h)
            return (left, top, left + w, top + h)
    return (0.0, 0.0, float(width), float(height))


def to_model_input(pixels: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 [N, H, W, 3] -> normalised float [N, 3, H, W], as the exported graph does internally."""
    x = pixels.permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean_t) / std_t
