"""Bad and odd uploads, generated in memory, for the imaging unit tests and the HTTP end-to-end tests.

Each :class:`Case` says what the service must answer: 200 for odd-but-valid images (with the upright
size and a few pixel colours the decoded RGB image must have), 400/413/415 with the error code for bad
ones. Statuses assume the service's pixel limit lies within :data:`MAX_PIXELS_RANGE`.

Usage: ``for case in bad_and_odd_images(): post(case.bytes, case.content_type) -> case.expected_status``.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, features

# The statuses hold for any max_pixels in this range: every valid case is far smaller, every too-large
# case larger (the "huge dimensions" JPEG declares 144 M pixels, the bomb 900 M).
MAX_PIXELS_RANGE = (1_000_000, 100_000_000)

RED = (220, 30, 30)
BLUE = (30, 30, 220)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
WIDTH, HEIGHT = 48, 32  # every valid case but the rotated one decodes to this size

Probe = tuple[int, int, tuple[int, int, int]]  # (x, y, expected RGB) in the decoded upright image


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    content_type: str
    expected_status: int
    expected_code: str | None = None  # the API's error code when expected_status != 200
    expected_size: tuple[int, int] | None = None  # decoded (width, height), upright
    probes: tuple[Probe, ...] = ()
    tolerance: int = 0  # per channel, for lossy formats

    @property
    def bytes(self) -> bytes:
        return self.data


def _left_right(left: tuple[int, int, int], right: tuple[int, int, int]) -> tuple[Probe, ...]:
    return ((WIDTH // 4, HEIGHT // 2, left), (3 * WIDTH // 4, HEIGHT // 2, right))


def _halves(mode: str, left: object, right: object, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    image = Image.new(mode, size, left)  # type: ignore[arg-type]
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))  # type: ignore[arg-type]
    return image


def _save(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.lru_cache(maxsize=1)
def decompression_bomb_png(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG of side×side black pixels: ~110 kB that would decode to 900 M pixels."""
    row = b"\x00" + bytes((side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_chunk = 1000
    parts = [compressor.compress(row * rows_per_chunk) for _ in range(side // rows_per_chunk)]
    parts.append(compressor.compress(row * (side % rows_per_chunk)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def huge_dimensions_jpeg(width: int = 12_000, height: int = 12_000) -> bytes:
    """A tiny JPEG whose frame header declares width×height (the scan data is that of a 16×16 image)."""
    data = bytearray(_save(Image.new("RGB", (16, 16), RED), "JPEG"))
    sof = data.index(b"\xff\xc0")  # baseline frame: marker, length(2), precision(1), height(2), width(2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _exif_rotated_jpeg() -> bytes:
    """Stored 48×32 with red on the left; orientation 6 (rotate 90° clockwise) shows it 32×48, red on top."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_halves("RGB", RED, BLUE), "JPEG", quality=95, exif=exif.tobytes())


def _sixteen_bit_png() -> bytes:
    """I;16: 65535 on the left must become white, 256 on the right must become 1 (not clip to white)."""
    values = np.full((HEIGHT, WIDTH), 65535, dtype=np.uint16)
    values[:, WIDTH // 2 :] = 256
    return _save(Image.fromarray(values), "PNG")


def _palette(transparent: bool) -> bytes:
    image = Image.new("P", (WIDTH, HEIGHT), 0)
    image.putpalette([*BLACK, *BLUE] + [0] * (256 - 2) * 3)
    image.paste(1, (WIDTH // 2, 0, WIDTH, HEIGHT))
    return _save(image, "PNG", **({"transparency": 0} if transparent else {}))


def _rgba_png() -> bytes:
    """Left fully transparent black -> white; right blue at alpha 128 -> blue blended half-way to white."""
    return _save(_halves("RGBA", (0, 0, 0, 0), (*BLUE, 128)), "PNG")


def _blend_over_white(colour: tuple[int, int, int], alpha: int) -> tuple[int, int, int]:
    return tuple(round((c * alpha + 255 * (255 - alpha)) / 255) for c in colour)  # type: ignore[return-value]


def _animated(fmt: str, **params: object) -> bytes:
    first, second = Image.new("RGB", (WIDTH, HEIGHT), RED), Image.new("RGB", (WIDTH, HEIGHT), BLUE)
    return _save(first, fmt, save_all=True, append_images=[second], duration=100, loop=0, **params)


def _float_tiff() -> bytes:
    values = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    values[:, WIDTH // 2 :] = 1.0
    return _save(Image.fromarray(values), "TIFF")


def _valid_cases() -> list[Case]:
    pattern = _halves("RGB", RED, BLUE)
    both = _left_right(RED, BLUE)

    def ok(name: str, data: bytes, content_type: str, probes: tuple[Probe, ...], tolerance: int = 0) -> Case:
        return Case(name, data, content_type, 200, None, (WIDTH, HEIGHT), probes, tolerance)

    return [
        ok("cmyk_jpeg", _save(_halves("CMYK", (0, 255, 255, 0), (255, 255, 0, 0)), "JPEG", quality=95),
           "image/jpeg", _left_right((255, 0, 0), (0, 0, 255)), tolerance=12),
        ok("png_16bit_grey", _sixteen_bit_png(), "image/png", _left_right(WHITE, (1, 1, 1))),
        ok("palette_png", _palette(transparent=False), "image/png", _left_right(BLACK, BLUE)),
        ok("palette_transparent_png", _palette(transparent=True), "image/png", _left_right(WHITE, BLUE)),
        ok("rgba_png", _rgba_png(), "image/png", _left_right(WHITE, _blend_over_white(BLUE, 128)), 1),
        ok("la_png", _save(_halves("LA", (0, 0), (0, 255)), "PNG"), "image/png", _left_right(WHITE, BLACK)),
        ok("one_bit_png", _save(_halves("1", 0, 1), "PNG"), "image/png", _left_right(BLACK, WHITE)),
        ok("animated_gif", _animated("GIF"), "image/gif", _left_right(RED, RED)),
        ok("animated_webp", _animated("WEBP", lossless=True), "image/webp", _left_right(RED, RED)),
        ok("animated_png", _animated("PNG"), "image/png", _left_right(RED, RED)),
        Case("exif_rotated_jpeg", _exif_rotated_jpeg(), "image/jpeg", 200, None, (HEIGHT, WIDTH),
             ((HEIGHT // 2, WIDTH // 4, RED), (HEIGHT // 2, 3 * WIDTH // 4, BLUE)), 12),
        ok("grayscale_jpeg", _save(_halves("L", 40, 200), "JPEG", quality=95), "image/jpeg",
           _left_right((40, 40, 40), (200, 200, 200)), tolerance=6),
        ok("webp", _save(pattern, "WEBP", lossless=True), "image/webp", both),
        ok("bmp", _save(pattern, "BMP"), "image/bmp", both),
        ok("tiff", _save(pattern, "TIFF"), "image/tiff", both),
        ok("float_tiff", _float_tiff(), "image/tiff", _left_right(BLACK, WHITE)),
        ok("jpeg_as_octet_stream", _save(pattern, "JPEG", quality=95), "application/octet-stream", both, 12),
        ok("mpo_jpeg", _save(pattern, "MPO", save_all=True, append_images=[pattern.rotate(180)]),
           "image/jpeg", both, tolerance=12),
        *([ok("avif", _save(pattern, "AVIF", quality=90), "image/avif", both, tolerance=12)]
          if features.check("avif") else []),
        Case("one_pixel_png", _save(Image.new("RGB", (1, 1), RED), "PNG"), "image/png", 200, None, (1, 1),
             ((0, 0, RED),)),
    ]  # fmt: skip


def _bad_cases() -> list[Case]:
    jpeg = _save(_halves("RGB", RED, BLUE, (256, 192)), "JPEG", quality=90)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    png = _save(Image.fromarray(noise), "PNG")
    random_bytes = np.random.default_rng(1234).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nshowpage\n%%EOF\n"
    return [
        Case("truncated_jpeg", jpeg[: len(jpeg) // 2], "image/jpeg", 400, "invalid_image"),
        Case("truncated_png", png[: len(png) // 2], "image/png", 400, "invalid_image"),
        Case("zero_bytes", b"", "image/jpeg", 400, "invalid_image"),
        Case("text_as_png", b"Plain text, not a picture.\n" * 4, "image/png", 400, "invalid_image"),
        Case("random_bytes", random_bytes, "application/octet-stream", 400, "invalid_image"),
        Case("png_corrupt_data", png[:60] + bytes(64) + png[124:], "image/png", 400, "invalid_image"),
        Case("decompression_bomb_png", decompression_bomb_png(), "image/png", 413, "image_too_large"),
        Case("huge_dimensions_jpeg", huge_dimensions_jpeg(), "image/jpeg", 413, "image_too_large"),
        Case("eps_refused", eps, "application/postscript", 415, "unsupported_media_type"),
        Case("svg_refused", svg, "image/svg+xml", 415, "unsupported_media_type"),
        Case("heic_refused", heic, "image/heic", 415, "unsupported_media_type"),
    ]  # fmt: skip


@functools.cache
def _all_cases() -> tuple[Case, ...]:
    return (*_valid_cases(), *_bad_cases())


def bad_and_odd_images() -> list[Case]:
    """Every case, valid ones first; names are unique and usable as pytest ids. Built once per process."""
    return list(_all_cases())
