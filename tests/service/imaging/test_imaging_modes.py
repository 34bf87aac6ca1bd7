"""Every pixel mode to 8-bit RGB: 16-bit scaling, floats, alpha over white, Pillow's own conversions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from service.imaging import UnsupportedImageTypeError, to_rgb


def grey_of(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(to_rgb(image))
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb[..., 0]


@pytest.mark.parametrize(("mode", "dtype"), [("I;16", "<u2"), ("I;16B", ">u2"), ("I", "<i4")])
def test_sixteen_bit_values_scale_with_rounding(mode: str, dtype: str) -> None:
    values = np.arange(65536, dtype=np.int64).reshape(256, 256)
    image = Image.frombytes(mode, (256, 256), values.astype(dtype).tobytes())  # convert() would clip
    expected = np.floor(values * 255 / 65535 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(grey_of(image), expected)


def test_sixteen_bit_is_not_clipped_like_pillow() -> None:
    image = Image.fromarray(np.array([[256, 65535]], dtype=np.uint16))
    assert grey_of(image).tolist() == [[1, 255]]


def test_thirty_two_bit_outside_sixteen_bit_range_is_clipped() -> None:
    image = Image.fromarray(np.array([[-5, 70_000]], dtype=np.int32))
    assert grey_of(image).tolist() == [[0, 255]]


def test_float_fractions_and_grey_levels() -> None:
    fractions = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert grey_of(fractions).tolist() == [[0, 128, 255]]
    levels = Image.fromarray(np.array([[-3.0, 100.4, 300.0, np.nan]], dtype=np.float32))
    assert grey_of(levels).tolist() == [[0, 100, 255, 0]]


ALPHAS = np.array([0, 64, 128, 255])


@pytest.mark.parametrize(
    ("mode", "colour"), [("RGBA", (200, 100, 50)), ("LA", (200,)), ("RGBa", (200, 100, 50)), ("La", (200,))]
)
def test_alpha_is_composited_over_white(mode: str, colour: tuple[int, ...]) -> None:
    straight = np.array(colour, dtype=np.float64)[None, :] * np.ones((len(ALPHAS), 1))
    stored = straight * ALPHAS[:, None] / 255 if mode in ("RGBa", "La") else straight  # premultiplied
    pixels = np.concatenate([np.rint(stored), ALPHAS[:, None]], axis=1).astype(np.uint8)
    image = Image.frombytes(mode, (len(ALPHAS), 1), pixels.tobytes())
    expected = straight * ALPHAS[:, None] / 255 + 255 * (1 - ALPHAS[:, None] / 255)
    rgb = np.asarray(to_rgb(image))[0].astype(float)
    np.testing.assert_allclose(
        rgb, np.broadcast_to(expected, (len(ALPHAS), 3)) if len(colour) == 1 else expected, atol=1
    )


def test_palette_alpha_modes_are_composited() -> None:
    pa = Image.new("PA", (2, 1))
    pa.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pa.putpixel((0, 0), (1, 0))  # red, fully transparent
    pa.putpixel((1, 0), (1, 255))  # red, opaque
    assert np.asarray(to_rgb(pa)).tolist() == [[[255, 255, 255], [255, 0, 0]]]


def test_rgb_colour_key_transparency_is_composited() -> None:
    image = Image.new("RGB", (2, 1), (10, 20, 30))
    image.putpixel((1, 0), (200, 0, 0))
    image.info["transparency"] = (10, 20, 30)
    assert np.asarray(to_rgb(image)).tolist() == [[[255, 255, 255], [200, 0, 0]]]


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "YCbCr", "HSV", "RGBX", "P"])
def test_other_modes_use_pillows_conversion(mode: str) -> None:
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)).convert(mode)
    converted = to_rgb(image)
    assert converted.mode == "RGB" and converted.size == (7, 5)
    np.testing.assert_array_equal(np.asarray(converted), np.asarray(image.convert("RGB")))


def test_rgb_is_returned_without_a_copy() -> None:
    image = Image.new("RGB", (3, 3))
    assert to_rgb(image) is image


def test_modes_pillow_cannot_convert_are_415() -> None:
    image = Image.new("LAB", (2, 2))
    try:
        image.convert("RGB")
    except ValueError:
        with pytest.raises(UnsupportedImageTypeError, match="LAB"):
            to_rgb(image)
    else:
        assert to_rgb(image).mode == "RGB"
