"""The request images: real photographs from scikit-image's sample data, encoded once into the cache.

Every server in a run receives exactly these bytes. ``photo.jpg`` (600×400, the load-test image) is a
typical web upload; the large variants stand in for a 12-megapixel phone photo.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from skimage import data as samples

IMAGES = {
    # name -> (size (w, h), format, content type)
    "photo.jpg": ((600, 400), "JPEG", "image/jpeg"),
    "large.jpg": ((4032, 3024), "JPEG", "image/jpeg"),
    "photo.png": ((600, 400), "PNG", "image/png"),
    "large.png": ((4032, 3024), "PNG", "image/png"),
}


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 6}))
    return buffer.getvalue()


def ensure_images(cache: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write the requested images into ``cache/images`` (once) and return their paths."""
    folder = Path(cache) / "images"
    folder.mkdir(parents=True, exist_ok=True)
    source = Image.fromarray(samples.coffee())
    paths = {}
    for name in names or list(IMAGES):
        size, fmt, _ = IMAGES[name]
        path = folder / name
        if not path.is_file():
            image = source if source.size == size else source.resize(size, Image.Resampling.BICUBIC)
            path.write_bytes(_encode(image, fmt))
        paths[name] = path
    return paths


def content_type(name: str) -> str:
    return IMAGES[name][2]
