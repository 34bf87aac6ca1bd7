"""A bundle's ``Preprocessing`` applied to a decoded image: the graph's uint8 [H, W, 3] input.

The steps are those of the export side's evaluation transform (``model_export.training.transforms``),
proved equal by ``tests/service/imaging/test_matches_export.py``:

- ``exact``: resize to ``input_size`` with the bundle's Pillow filter.
- ``shorter_side``: resize so the shorter side is ``resize_size``, the longer side ``int()``-truncated
  (torchvision's ``Resize(int)``), then centre-crop ``input_size`` with offsets
  ``int(round((w - crop_w) / 2.0))`` as timm and torchvision do.

Mean and std are not applied here: the graph normalises pixels/255 itself.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from service.bundle import Preprocessing
from service.imaging.decode import decode_image
from service.imaging.modes import to_rgb

FILTERS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# A JPEG may be DCT-downscaled only while it keeps twice the resolution the resize needs: the filter then
# still has real detail to average; on photo-like JPEGs of 1200×900 to 4000×3000 the preprocessed tensor
# stayed within 0.33 grey levels (mean) of a full decode (docs/imaging.md).
DRAFT_MARGIN = 2
# shorter_side never materialises a resized image larger than the source and than this many crops; beyond
# that (extreme aspect ratios) only the region that survives the crop is resized.
AMPLIFICATION_CROPS = 16


def resized_size(width: int, height: int, preprocessing: Preprocessing) -> tuple[int, int]:
    """(width, height) of the image after the resize step, before any crop."""
    if preprocessing.resize == "exact":
        crop_h, crop_w = preprocessing.input_size
        return crop_w, crop_h
    shorter = preprocessing.resize_size
    assert shorter is not None  # Preprocessing validates this for shorter_side
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def center_crop_box(width: int, height: int, crop_h: int, crop_w: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centre crop, offsets rounded half-to-even as timm does."""
    left = round((width - crop_w) / 2.0)  # Python rounds half to even, as timm's int(round(...))
    top = round((height - crop_h) / 2.0)
    return left, top, left + crop_w, top + crop_h


def draft_size(preprocessing: Preprocessing) -> tuple[int, int] | None:
    """The least (width, height) a JPEG may be reduced to while decoding, or None for a full decode.

    ``nearest`` point-samples single pixels, which a reduced decode (8×8 DCT blocks averaged down) would
    change by tens of grey levels in places, so it always gets the full decode.
    """
    if preprocessing.interpolation == "nearest":
        return None
    if preprocessing.resize == "exact":
        crop_h, crop_w = preprocessing.input_size
        return DRAFT_MARGIN * crop_w, DRAFT_MARGIN * crop_h
    assert preprocessing.resize_size is not None
    side = DRAFT_MARGIN * preprocessing.resize_size  # both sides >= this keeps the shorter one >= it
    return side, side


def preprocessed_image(image: Image.Image, preprocessing: Preprocessing) -> Image.Image:
    """The resized (and cropped) RGB image exactly as the model sees it."""
    image = to_rgb(image)
    resample = FILTERS[preprocessing.interpolation]
    size = resized_size(image.width, image.height, preprocessing)
    if preprocessing.resize == "exact":
        return image if image.size == size else image.resize(size, resample=resample)
    crop_h, crop_w = preprocessing.input_size
    box = center_crop_box(size[0], size[1], crop_h, crop_w)
    if size[0] * size[1] > max(image.width * image.height, AMPLIFICATION_CROPS * crop_h * crop_w):
        return _resize_crop_region(image, size, box, resample)
    if image.size != size:  # Pillow would return a plain copy
        image = image.resize(size, resample=resample)
    return image.crop(box)


def _resize_crop_region(
    image: Image.Image, size: tuple[int, int], box: tuple[int, int, int, int], resample: Image.Resampling
) -> Image.Image:
    """Resize only the source region that ends up in the crop.

    A 10000×1 strip would otherwise be resized to 2,560,000×256 before a 224×224 crop (gigabytes from a
    10 kB upload). The sampling grid is the same as resize-then-crop; floating-point rounding of the filter
    positions can move a pixel by one grey level, so this path is used only for such extreme aspect ratios.
    """
    scale_x, scale_y = image.width / size[0], image.height / size[1]
    left, top, right, bottom = box
    source = (left * scale_x, top * scale_y, right * scale_x, bottom * scale_y)
    return image.resize((right - left, bottom - top), resample=resample, box=source)


def preprocess(image: Image.Image, preprocessing: Preprocessing) -> np.ndarray:
    """uint8 [H, W, 3] RGB, C-contiguous and read-only (a view of the final image's bytes, no extra copy)."""
    return np.asarray(preprocessed_image(image, preprocessing))


def load_for_model(
    data: bytes, preprocessing: Preprocessing, *, max_pixels: int
) -> tuple[np.ndarray, Image.Image]:
    """Decode (JPEGs at a reduced scale where that is safe) and preprocess: (model input, decoded image).

    Keep the decoded image to render an explanation later: preprocessing it again gives the same crop.
    """
    image = decode_image(data, max_pixels=max_pixels, target_size=draft_size(preprocessing))
    return preprocess(image, preprocessing), image
