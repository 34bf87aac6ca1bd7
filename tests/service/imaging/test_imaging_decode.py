"""Decoding uploads: size limits before any pixel is decoded, truncation, fuzzed bytes, EXIF orientation."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

from service.imaging import (
    ACCEPTED_FORMATS,
    ImageError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedImageTypeError,
    decode_image,
)

LIMIT = 10_000_000


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_errors_carry_status_and_code() -> None:
    assert (InvalidImageError.status, InvalidImageError.code) == (400, "invalid_image")
    assert (ImageTooLargeError.status, ImageTooLargeError.code) == (413, "image_too_large")
    unsupported = UnsupportedImageTypeError
    assert (unsupported.status, unsupported.code) == (415, "unsupported_media_type")
    assert all(issubclass(cls, ImageError) for cls in (InvalidImageError, ImageTooLargeError))
    assert str(InvalidImageError("why")) == InvalidImageError("why").message == "why"


def test_pixel_limit_is_inclusive() -> None:
    data = encode(Image.new("RGB", (100, 50)), "PNG")
    assert decode_image(data, max_pixels=5000).size == (100, 50)
    with pytest.raises(ImageTooLargeError, match="100×50"):
        decode_image(data, max_pixels=4999)


def test_too_large_is_refused_from_the_header_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(noise(300, 200), "PNG")

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError):
        decode_image(data, max_pixels=300 * 200 - 1)


@pytest.mark.parametrize("pixels", [1_500, 2_500])  # Pillow's warning zone, then its error zone
def test_pillow_bomb_warning_and_error_become_413(monkeypatch: pytest.MonkeyPatch, pixels: int) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    data = encode(Image.new("L", (pixels // 10, 10)), "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may leak out as a warning either
        with pytest.raises(ImageTooLargeError):
            decode_image(data, max_pixels=1_000)


def test_pillow_limit_is_raised_to_ours_and_restored_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("L", (100, 100)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    assert decode_image(data, max_pixels=20_000).size == (100, 100)  # Pillow alone would refuse 10 000 px
    assert Image.MAX_IMAGE_PIXELS == 20_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    decode_image(data, max_pixels=LIMIT)
    assert Image.MAX_IMAGE_PIXELS == LIMIT


def test_truncated_images_stay_errors() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    image = noise(64, 48)
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"):
        data = encode(image, fmt)
        for fraction in (0.2, 0.5, 0.9):
            with pytest.raises(InvalidImageError):
                decode_image(data[: int(len(data) * fraction)], max_pixels=LIMIT)


@pytest.mark.filterwarnings("ignore:Tag data larger than file")  # Pillow notes corrupt TIFF tags
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_mutated_bytes_decode_or_raise_image_error(fmt: str) -> None:
    """Flipped bytes must never surface as anything but a decoded RGB image or an ImageError."""
    data = encode(noise(40, 30), fmt)
    rng = np.random.default_rng(7)
    for _ in range(40):
        mutated = bytearray(data)
        for position in rng.integers(0, len(data), size=rng.integers(1, 8)):
            mutated[position] = int(rng.integers(0, 256))
        try:
            image = decode_image(bytes(mutated), max_pixels=LIMIT)
        except ImageError:
            continue
        assert image.mode == "RGB"


def test_memoryview_and_bytearray_are_accepted() -> None:
    data = encode(noise(20, 10), "PNG")
    expected = decode_image(data, max_pixels=LIMIT).tobytes()
    assert decode_image(bytearray(data), max_pixels=LIMIT).tobytes() == expected  # type: ignore[arg-type]
    assert decode_image(memoryview(data), max_pixels=LIMIT).tobytes() == expected  # type: ignore[arg-type]


def test_formats_we_do_not_decode_are_415() -> None:
    data = encode(Image.new("RGB", (16, 16)), "ICO")
    with pytest.raises(UnsupportedImageTypeError, match="ICO"):
        decode_image(data, max_pixels=LIMIT)


def test_max_pixels_must_be_positive() -> None:
    with pytest.raises(ValueError):
        decode_image(b"x", max_pixels=0)


# EXIF orientation -> the transform that shows the stored pixels upright (EXIF 2.3, tag 0x0112).
UPRIGHT = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_every_exif_orientation_is_applied(orientation: int) -> None:
    stored = noise(6, 4, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(encode(stored, "PNG", exif=exif.tobytes()), max_pixels=LIMIT)
    np.testing.assert_array_equal(np.asarray(decoded), UPRIGHT[orientation](np.asarray(stored)))


def test_malformed_orientation_is_ignored() -> None:
    stored = noise(6, 4)
    exif = Image.Exif()
    exif[0x0112] = 42
    decoded = decode_image(encode(stored, "PNG", exif=exif.tobytes()), max_pixels=LIMIT)
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(stored))


@pytest.mark.parametrize("orientation", [1, 6])
def test_jpeg_draft_keeps_the_requested_upright_size(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.new("RGB", (1600, 800), (90, 120, 150)), "JPEG", exif=exif.tobytes())
    target = (150, 390)  # upright (width, height); the stored image is rotated when orientation is 6
    image = decode_image(data, max_pixels=LIMIT, target_size=target)
    assert image.width >= target[0] and image.height >= target[1]
    assert image.width * image.height < 1600 * 800  # it was decoded at a reduced scale
    full = decode_image(data, max_pixels=LIMIT)
    assert full.size == ((1600, 800) if orientation == 1 else (800, 1600))


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(32), "HEIF/HEIC"),
        (b"%PDF-1.7\n" + bytes(32), "PDF"),
        (b"\xff\x0a" + bytes(32), "JPEG XL"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    ],
)
def test_recognised_but_refused_signatures_are_415(data: bytes, name: str) -> None:
    with pytest.raises(UnsupportedImageTypeError, match=name):
        decode_image(data, max_pixels=LIMIT)


def test_corrupt_avif_is_invalid_when_avif_is_accepted() -> None:
    if "AVIF" not in ACCEPTED_FORMATS:
        pytest.skip("this Pillow has no AVIF support")
    with pytest.raises(InvalidImageError):
        decode_image(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + bytes(32), max_pixels=LIMIT)
