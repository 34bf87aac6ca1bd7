"""The service's preprocessing equals the export side's evaluation transform, pixel for pixel.

The exported graphs were evaluated on ``model_export.training.transforms.eval_transform``; the service
feeds them ``service.imaging.preprocess``. Any difference would be a silent accuracy drift, so both run
on the same images (sizes and aspects around the crop, both resize modes, every filter).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from service.bundle import Preprocessing
from service.imaging import preprocess
from service.imaging.preprocess import FILTERS

transforms = pytest.importorskip(
    "model_export.training.transforms", reason="model_export (export extra, torch) is not importable"
)
if not hasattr(transforms, "eval_transform"):
    pytest.skip("model_export.training.transforms has no eval_transform yet", allow_module_level=True)

SIZES = [(224, 224), (225, 224), (256, 256), (257, 300), (300, 257), (640, 480), (480, 640), (97, 31), (1, 1)]
PREPROCESSINGS = [
    Preprocessing((224, 224), "shorter_side", 256),
    Preprocessing((224, 224), "shorter_side", 248),  # DeiT's crop_pct 0.9
    Preprocessing((224, 192), "shorter_side", 240),  # non-square crop: H and W must not be swapped
    Preprocessing((224, 224), "exact"),
    Preprocessing((160, 128), "exact"),
    Preprocessing((8, 8), "exact"),  # digits-sized
]


def smooth_and_sharp(width: int, height: int, seed: int) -> Image.Image:
    """Gradients plus noise: smooth areas and hard edges exercise every filter's taps."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255.0 / max(width - 1, 1), y * 255.0 / max(height - 1, 1), (x + y) % 64 * 4.0], -1)
    pixels = base + rng.normal(0.0, 30.0, base.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("interpolation", sorted(FILTERS))
@pytest.mark.parametrize(
    "preprocessing",
    PREPROCESSINGS,
    ids=lambda p: f"{p.resize}-{p.input_size[0]}x{p.input_size[1]}-{p.resize_size}",
)
def test_service_preprocessing_equals_export_eval_transform(
    preprocessing: Preprocessing, interpolation: str
) -> None:
    preprocessing = Preprocessing(
        preprocessing.input_size, preprocessing.resize, preprocessing.resize_size, interpolation
    )
    export_transform = transforms.eval_transform(preprocessing)
    for seed, (width, height) in enumerate(SIZES):
        image = smooth_and_sharp(width, height, seed)
        expected = np.asarray(export_transform(image))
        actual = preprocess(image, preprocessing)
        assert actual.dtype == expected.dtype == np.uint8
        assert actual.shape == expected.shape == (*preprocessing.input_size, 3)
        np.testing.assert_array_equal(actual, expected, err_msg=f"{width}×{height} {preprocessing}")


def test_greyscale_input_is_handled_alike() -> None:
    preprocessing = Preprocessing((224, 224), "shorter_side", 256)
    grey = smooth_and_sharp(300, 260, 0).convert("L")
    expected = np.asarray(transforms.eval_transform(preprocessing)(grey))
    np.testing.assert_array_equal(preprocess(grey, preprocessing), expected)
