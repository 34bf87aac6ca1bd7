"""Uploaded image bytes -> the graph's uint8 input, and rollout maps -> heatmap PNGs. Pillow and NumPy only.

``load_for_model`` is the request path: decode safely (size checked from the header, JPEG draft,
EXIF orientation, every pixel mode to RGB) then apply the bundle's preprocessing.
"""

from service.imaging.decode import ACCEPTED_FORMATS, decode_image
from service.imaging.errors import (
    ImageError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedImageTypeError,
)
from service.imaging.heatmap import render_heatmap_png
from service.imaging.modes import to_rgb
from service.imaging.preprocess import draft_size, load_for_model, preprocess, preprocessed_image

__all__ = [
    "ACCEPTED_FORMATS",
    "ImageError",
    "ImageTooLargeError",
    "InvalidImageError",
    "UnsupportedImageTypeError",
    "decode_image",
    "draft_size",
    "load_for_model",
    "preprocess",
    "preprocessed_image",
    "render_heatmap_png",
    "to_rgb",
]
