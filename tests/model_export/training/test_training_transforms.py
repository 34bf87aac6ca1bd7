"""Evaluation transform and augmentations: exact geometry, determinism, and the model-input conversion."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from model_export.training.transforms import (
    eval_transform,
    random_affine,
    random_flip,
    random_resized_crop,
    shorter_side_size,
    to_model_input,
)
from service.bundle import Preprocessing


def _noise(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def test_exact_nearest_upscale_by_an_integer_repeats_pixels():
    image = _noise(8, 6)
    out = eval_transform(Preprocessing((12, 16), "exact", interpolation="nearest"))(image)
    expected = np.repeat(np.repeat(np.asarray(image), 2, axis=0), 2, axis=1)
    assert out.dtype == np.uint8 and np.array_equal(out, expected)


def test_shorter_side_centre_crops_without_resizing_when_sizes_agree():
    # shorter side already equals resize_size: the transform is a pure centre crop
    image = _noise(40, 30, seed=1)
    out = eval_transform(Preprocessing((24, 20), "shorter_side", resize_size=30))(image)
    top, left = (30 - 24) // 2, (40 - 20) // 2
    assert np.array_equal(out, np.asarray(image)[top : top + 24, left : left + 20])


def test_shorter_side_keeps_aspect_and_output_is_rgb_of_input_size():
    assert shorter_side_size(300, 200, 100) == (150, 100)
    assert shorter_side_size(200, 301, 100) == (100, 150)  # truncated, like torchvision
    gray = _noise(50, 70, mode="L")
    out = eval_transform(Preprocessing((32, 32), "shorter_side", resize_size=36))(gray)
    assert out.shape == (32, 32, 3)
    assert np.array_equal(out[..., 0], out[..., 1])


def test_digits_affine_is_deterministic_per_seed_and_identity_without_motion():
    preprocessing = Preprocessing((32, 32), "exact", interpolation="bilinear")
    image = _noise(8, 8, seed=2)
    augment = random_affine(preprocessing, rotate=10, translate=0.125)
    first = augment(image, np.random.default_rng((0, 3, 7)))
    assert np.array_equal(first, augment(image, np.random.default_rng((0, 3, 7))))
    assert not np.array_equal(first, augment(image, np.random.default_rng((0, 4, 7))))
    still = random_affine(preprocessing, rotate=0, translate=0, scale=(1.0, 1.0))
    assert np.array_equal(still(image, np.random.default_rng(0)), eval_transform(preprocessing)(image))


def test_random_resized_crop_shape_and_flip():
    preprocessing = Preprocessing((16, 16), "exact", interpolation="bilinear")
    image = _noise(32, 32, seed=3)
    crop = random_resized_crop(preprocessing, scale_min=1.0, flip=True)
    # full-area crops (aspect 1 is the only one that fits) are the evaluation image or its mirror
    outs = [crop(image, np.random.default_rng(seed)) for seed in range(40)]
    base = eval_transform(preprocessing)(image)
    exact = [np.array_equal(o, base) for o in outs]
    mirrored = [np.array_equal(o, base[:, ::-1]) for o in outs]
    assert all(a or b for a, b in zip(exact, mirrored, strict=True))
    assert any(exact) and any(mirrored)
    smaller = random_resized_crop(preprocessing, scale_min=0.3, flip=False)(image, np.random.default_rng(5))
    assert smaller.shape == (16, 16, 3) and not np.array_equal(smaller, base)


def test_random_flip_is_the_evaluation_image_or_its_mirror_about_half_the_time():
    preprocessing = Preprocessing((16, 16), "exact", interpolation="bicubic")
    image = _noise(32, 32, seed=4)
    base = eval_transform(preprocessing)(image)
    flip = random_flip(preprocessing)
    outs = [flip(image, np.random.default_rng((0, 1, index))) for index in range(200)]
    mirrored = [np.array_equal(o, base[:, ::-1]) for o in outs]
    assert all(m or np.array_equal(o, base) for m, o in zip(mirrored, outs, strict=True))
    assert 70 <= sum(mirrored) <= 130
    assert all(o.flags.c_contiguous and o.dtype == np.uint8 for o in outs)
    assert np.array_equal(flip(image, np.random.default_rng(9)), flip(image, np.random.default_rng(9)))


def test_to_model_input_normalises_like_the_graph():
    pixels = torch.tensor(np.random.default_rng(4).integers(0, 256, (2, 5, 6, 3)), dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = to_model_input(pixels, mean, std)
    assert out.shape == (2, 3, 5, 6)
    reference = (pixels.numpy().astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(out.numpy(), reference.transpose(0, 3, 1, 2), atol=1e-5)
