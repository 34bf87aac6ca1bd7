"""The bundle's preprocessing: resize modes, centre-crop offsets, filters, extreme aspect ratios, draft."""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
from PIL import Image

from service.bundle import Preprocessing
from service.imaging import decode_image, draft_size, load_for_model, preprocess
from service.imaging.preprocess import FILTERS, center_crop_box, preprocessed_image, resized_size

LIMIT = 50_000_000
INTERPOLATIONS = sorted(FILTERS)


def column_index_image(width: int, height: int) -> Image.Image:
    """Red channel = x mod 256, green = x // 256, blue = y mod 256: any crop reveals its offsets."""
    x = np.arange(width)[None, :].repeat(height, 0)
    y = np.arange(height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x % 256, x // 256, y % 256], axis=-1).astype(np.uint8))


@functools.cache
def astronaut_jpeg(width: int, height: int) -> bytes:
    """A large photo-like JPEG: scikit-image's astronaut upscaled (smooth, with real edges)."""
    skimage_data = pytest.importorskip("skimage.data")
    image = Image.fromarray(skimage_data.astronaut()).resize((width, height), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("size", [(640, 480), (300, 700), (224, 224), (50, 20)])
def test_shapes_and_layout(interpolation: str, size: tuple[int, int]) -> None:
    image = Image.new("RGB", size, (1, 2, 3))
    for preprocessing in (
        Preprocessing((224, 160), "exact", interpolation=interpolation),
        Preprocessing((224, 160), "shorter_side", 256, interpolation=interpolation),
    ):
        pixels = preprocess(image, preprocessing)
        assert pixels.shape == (224, 160, 3) and pixels.dtype == np.uint8
        assert pixels.flags.c_contiguous
        assert (pixels == (1, 2, 3)).all()


def test_exact_resize_is_pillows_resize_with_the_bundle_filter() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8))
    for interpolation, resample in FILTERS.items():
        pixels = preprocess(image, Preprocessing((40, 50), "exact", interpolation=interpolation))
        np.testing.assert_array_equal(pixels, np.asarray(image.resize((50, 40), resample=resample)))


@pytest.mark.parametrize("size", [(256, 300), (300, 256), (256, 256)])
@pytest.mark.parametrize("crop", [(224, 224), (223, 224), (224, 221)])
def test_centre_crop_offsets_round_as_timm(size: tuple[int, int], crop: tuple[int, int]) -> None:
    """resize_size equal to the shorter side makes the resize a no-op, leaving only the crop to check."""
    width, height = size
    crop_h, crop_w = crop
    pixels = preprocess(
        column_index_image(width, height),
        Preprocessing((crop_h, crop_w), "shorter_side", min(size), interpolation="nearest"),
    )
    left = int(round((width - crop_w) / 2.0))  # noqa: RUF046 - timm's exact expression
    top = int(round((height - crop_h) / 2.0))  # noqa: RUF046
    assert int(pixels[0, 0, 0]) + 256 * int(pixels[0, 0, 1]) == left
    assert int(pixels[0, 0, 2]) == top
    assert int(pixels[-1, -1, 0]) + 256 * int(pixels[-1, -1, 1]) == left + crop_w - 1


@pytest.mark.parametrize("size", [(1000, 750), (750, 1000), (333, 1000), (257, 256)])
def test_shorter_side_becomes_resize_size_and_aspect_is_kept(size: tuple[int, int]) -> None:
    preprocessing = Preprocessing((224, 224), "shorter_side", 256)
    new_w, new_h = resized_size(*size, preprocessing)
    assert min(new_w, new_h) == 256
    assert abs(new_w / new_h - size[0] / size[1]) < 1 / 256  # the longer side is truncated, not rounded
    left, top, right, bottom = center_crop_box(new_w, new_h, 224, 224)
    assert (right - left, bottom - top) == (224, 224) and left >= 0 and top >= 0


def test_extreme_aspect_ratio_resizes_only_the_cropped_region() -> None:
    """A 20000×2 strip would otherwise become 2,560,000×256 (2 GB) before the crop."""
    strip = Image.new("RGB", (20_000, 2), (9, 8, 7))
    pixels = preprocess(strip, Preprocessing((224, 224), "shorter_side", 256))
    assert pixels.shape == (224, 224, 3) and (pixels == (9, 8, 7)).all()


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("size", [(600, 4), (4, 600), (97, 1000)])
def test_region_resize_matches_resize_then_crop(interpolation: str, size: tuple[int, int]) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    image = Image.fromarray(skimage_data.astronaut()).resize(size, Image.Resampling.BILINEAR)
    preprocessing = Preprocessing((28, 28), "shorter_side", 32, interpolation=interpolation)
    resized = image.resize(resized_size(*size, preprocessing), resample=FILTERS[interpolation])
    reference = np.asarray(resized.crop(center_crop_box(resized.width, resized.height, 28, 28)))
    difference = np.abs(preprocess(image, preprocessing).astype(int) - reference.astype(int))
    assert difference.max() <= 1 and difference.mean() <= 0.1


def test_non_rgb_input_is_converted_first() -> None:
    grey = Image.new("L", (40, 30), 77)
    pixels = preprocess(grey, Preprocessing((16, 16), "exact"))
    assert pixels.shape == (16, 16, 3) and (pixels == 77).all()


def test_draft_size_keeps_twice_the_pre_crop_size() -> None:
    assert draft_size(Preprocessing((224, 160), "exact")) == (320, 448)
    assert draft_size(Preprocessing((224, 224), "shorter_side", 256)) == (512, 512)
    assert draft_size(Preprocessing((224, 224), "exact", interpolation="nearest")) is None


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "lanczos"])
def test_jpeg_draft_stays_close_to_a_full_decode(interpolation: str) -> None:
    data = astronaut_jpeg(3000, 2000)
    full = decode_image(data, max_pixels=LIMIT)
    for preprocessing in (
        Preprocessing((224, 224), "shorter_side", 256, interpolation=interpolation),
        Preprocessing((224, 224), "exact", interpolation=interpolation),
    ):
        pixels, drafted = load_for_model(data, preprocessing, max_pixels=LIMIT)
        assert drafted.width < full.width  # the draft really reduced the decode
        target = draft_size(preprocessing)
        assert target is not None and drafted.width >= target[0] and drafted.height >= target[1]
        difference = np.abs(pixels.astype(np.int16) - preprocess(full, preprocessing).astype(np.int16))
        assert difference.mean() <= 0.5, f"{preprocessing}: mean {difference.mean():.3f}"
        assert np.percentile(difference, 99) <= 2
        assert difference.max() <= 8


def test_nearest_is_never_drafted() -> None:
    data = astronaut_jpeg(1600, 1200)
    _, image = load_for_model(
        data, Preprocessing((224, 224), "exact", interpolation="nearest"), max_pixels=LIMIT
    )
    assert image.size == (1600, 1200)


def test_decoded_image_reproduces_the_model_input() -> None:
    """The explanation PNG re-preprocesses the returned image: it must give back the same crop."""
    preprocessing = Preprocessing((224, 224), "shorter_side", 256)
    pixels, image = load_for_model(astronaut_jpeg(1600, 1200), preprocessing, max_pixels=LIMIT)
    np.testing.assert_array_equal(np.asarray(preprocessed_image(image, preprocessing)), pixels)
