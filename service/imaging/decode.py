"""Uploaded bytes -> an upright RGB Pillow image, refusing anything unsafe before a pixel is decoded.

Order matters: the header is read lazily, the declared size is checked against ``max_pixels`` (so a bomb
never allocates), large JPEGs are DCT-downscaled while decoding (``draft``), then the first frame is decoded,
EXIF orientation applied and the pixel mode converted (:mod:`service.imaging.modes`). Truncated data is an
error: ``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off. Only common web formats reach a decoder; other images
Pillow (or a signature check) recognises are refused with 415.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from service.imaging.errors import (
    ImageError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedImageTypeError,
)
from service.imaging.modes import to_rgb

Image.init()
# Formats whose decoders are exposed to uploads. MPO is a camera JPEG with extra frames.
ACCEPTED_FORMATS: tuple[str, ...] = tuple(
    f for f in ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF") if f in Image.OPEN
)
# Images Pillow can identify from a reliable signature but that we do not decode (EPS would run
# Ghostscript; the rest are rare and add attack surface). Identifying only reads the header.
_IDENTIFY_ONLY: tuple[str, ...] = tuple(
    f
    for f in ("PSD", "ICO", "ICNS", "EPS", "DDS", "JPEG2000", "QOI", "PPM", "SGI", "BLP", "FITS", "DCX")
    if f in Image.OPEN
)
_DRAFTABLE = frozenset({"JPEG", "MPO"})
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # 90° or 270°: width and height swap
# ISO base media "ftyp" brands of HEIF stills and sequences (phones' HEIC) and of AVIF.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def decode_image(data: bytes, *, max_pixels: int, target_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``data`` to an upright RGB image (first frame of an animation).

    ``target_size`` (width, height) lets a JPEG decode at 1/2, 1/4 or 1/8 scale while both sides stay at
    least that large; leave it ``None`` for a full-resolution decode.
    Raises :class:`InvalidImageError` (400), :class:`ImageTooLargeError` (413) or
    :class:`UnsupportedImageTypeError` (415).
    """
    if max_pixels <= 0:
        raise ValueError("max_pixels must be positive")
    if not data:
        raise InvalidImageError("the upload is empty (0 bytes)")
    _align_pillow_limit(max_pixels)
    image = _open(bytes(data))
    _check_pixels(image.size, max_pixels)
    if target_size is not None and image.format in _DRAFTABLE:
        _draft(image, target_size)
    _load(image)
    return to_rgb(_upright(image))


def _align_pillow_limit(max_pixels: int) -> None:
    """Pillow's own bomb checks (on open, GIF frames, TIFF tiles) stay on, never below our limit, so they
    only ever refuse images we refuse too; a limit someone set to None is restored."""
    if Image.MAX_IMAGE_PIXELS is None or max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


@contextlib.contextmanager
def _bomb_warnings_raise() -> Iterator[None]:
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it raise.

    ``catch_warnings`` swaps process-wide filters; should two threads race, the filter one of them can
    leave installed is this same category-specific "error" filter, the behaviour wanted anyway.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _open(data: bytes) -> Image.Image:
    try:
        with _bomb_warnings_raise():
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except _BOMB_ERRORS as exc:
        raise ImageTooLargeError(f"the image declares too many pixels to decode safely ({exc})") from exc
    except UnidentifiedImageError:
        refused = _refused_format(data)
        if refused is not None:
            raise UnsupportedImageTypeError(
                f"{refused} images are not accepted; send {', '.join(_accepted_names())}"
            ) from None
        raise InvalidImageError(
            f"the upload ({len(data)} bytes) is not a readable image; expected {', '.join(_accepted_names())}"
        ) from None
    except Exception as exc:  # plugins raise OSError, ValueError, ... on malformed headers
        raise InvalidImageError(f"the image header is corrupt: {exc}") from exc
    if image.width <= 0 or image.height <= 0:
        raise InvalidImageError(f"the image declares an empty size {image.width}×{image.height}")
    return image


def _accepted_names() -> list[str]:
    return [f for f in ACCEPTED_FORMATS if f != "MPO"]


def _refused_format(data: bytes) -> str | None:
    """The name of an image format we recognise but do not decode, or None."""
    head = data[:2048]
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF/HEIC"
    if head[4:8] == b"ftyp" and head[8:12] in _AVIF_BRANDS and "AVIF" not in ACCEPTED_FORMATS:
        return "AVIF"  # with AVIF accepted, one Pillow could not open is simply corrupt (400)
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JPEG XL"
    if head.startswith(b"%PDF-"):
        return "PDF"
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG"
    try:
        with _bomb_warnings_raise(), Image.open(io.BytesIO(data), formats=_IDENTIFY_ONLY) as other:
            return str(other.format)
    except Exception:  # not identifiable either: the caller reports an invalid image
        return None


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
        )


def _orientation(image: Image.Image) -> int:
    """EXIF orientation 1..8; a missing or malformed tag counts as upright rather than failing the upload."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _draft(image: Image.Image, target_size: tuple[int, int]) -> None:
    """Let libjpeg decode at a reduced scale with both sides still >= ``target_size`` (given upright)."""
    width, height = target_size
    if _orientation(image) in _TRANSPOSED_ORIENTATIONS:  # JPEG reads EXIF from the header, no decode
        width, height = height, width
    image.draft("RGB", (max(1, width), max(1, height)))


def _load(image: Image.Image) -> None:
    try:
        with _bomb_warnings_raise():
            image.load()
    except _BOMB_ERRORS as exc:
        raise ImageTooLargeError(f"the image is too large to decode safely ({exc})") from exc
    except Exception as exc:  # truncated or corrupt data: OSError, SyntaxError, ValueError, EOFError, ...
        raise InvalidImageError(f"the image data is truncated or corrupt: {exc}") from exc


def _upright(image: Image.Image) -> Image.Image:
    if _orientation(image) == 1:
        return image
    try:
        return ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except Exception as exc:
        raise InvalidImageError(f"the image's EXIF orientation could not be applied: {exc}") from exc
