"""Every Pillow pixel mode an upload can decode to, converted to 8-bit RGB the way a viewer would show it.

Choices (also in docs/imaging.md):

- Transparency is composited over WHITE, the background browsers and viewers show behind a transparent
  image, so a black logo on a transparent background stays a black logo (over black it would vanish).
- 16-bit greyscale (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) and 32-bit ``I`` hold 0..65535; they are
  scaled by 255/65535 with rounding, so 65535 is white and 256 is 1. Pillow's own ``convert("L")`` clips
  everything above 255 to white instead. ``I`` values outside 0..65535 are clipped into that range.
- ``F`` (32-bit float) has no defined white level: values already within [0, 1] are treated as fractions
  of white, anything else as 0..255 grey levels (clipped) as Pillow does; NaN becomes black.
- CMYK, YCbCr, LAB, HSV, 1-bit, L and palette images use Pillow's own conversion (Adobe's inverted CMYK
  JPEGs are handled by the JPEG plugin). Embedded ICC profiles are not applied.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from service.imaging.errors import UnsupportedImageTypeError

WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA"})
_PREMULTIPLIED_MODES = frozenset({"RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_DIRECT_MODES = frozenset({"L", "1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"})


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as mode ``RGB``; an image that already is RGB is returned as is (no copy)."""
    try:
        return _convert(image)
    except ValueError as exc:  # a mode Pillow cannot take to RGB
        raise UnsupportedImageTypeError(f"images in pixel mode {image.mode} are not supported") from exc


def _convert(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("RGB", "L", "P") and "transparency" in image.info:  # a tRNS colour key or palette alpha
        return _over_white(image.convert("RGBA"))
    if mode == "RGB":
        return image
    if mode == "P":
        has_alpha = image.palette is not None and image.palette.mode == "RGBA"
        return _over_white(image.convert("RGBA")) if has_alpha else image.convert("RGB")
    if mode in _ALPHA_MODES:
        return _over_white(image.convert("RGBA"))
    if mode in _PREMULTIPLIED_MODES:
        return _premultiplied_over_white(image)
    if mode in _SIXTEEN_BIT_MODES:
        return _grey_to_rgb(_sixteen_bit_to_grey(image))
    if mode == "F":
        return _grey_to_rgb(_float_to_grey(image))
    if mode in _DIRECT_MODES:
        return image.convert("RGB")
    raise ValueError(f"no conversion from {mode}")


def _over_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _premultiplied_over_white(image: Image.Image) -> Image.Image:
    """Colour already multiplied by alpha: over white it is colour + 255 - alpha (Pillow cannot take La
    to RGBA)."""
    values = np.asarray(image).astype(np.int16)
    over = np.clip(values[..., :-1] + (255 - values[..., -1:]), 0, 255).astype(np.uint8)
    return _grey_to_rgb(over[..., 0]) if image.mode == "La" else Image.fromarray(over)


def _sixteen_bit_to_grey(image: Image.Image) -> np.ndarray:
    values = np.asarray(image).astype(np.int32, copy=False)  # I;16 is uint16, I already int32
    values = np.clip(values, 0, 65535)
    # round(v * 255 / 65535) == (v + 128) // 257 for every v in 0..65535.
    return ((values + 128) // 257).astype(np.uint8)


def _float_to_grey(image: Image.Image) -> np.ndarray:
    values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=255.0, neginf=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(grey).convert("RGB")
