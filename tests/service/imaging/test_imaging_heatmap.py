"""Heatmap PNGs: the rollout drawn over the crop the model saw."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.bundle import Preprocessing
from service.imaging import render_heatmap_png
from service.imaging.heatmap import COLORMAP, heatmap_overlay, normalise
from service.imaging.preprocess import preprocess

PREPROCESSING = Preprocessing((64, 48), "shorter_side", 72, interpolation="bilinear")


def photo(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))


def rollout_with_peak(grid: tuple[int, int], peak: tuple[int, int]) -> np.ndarray:
    rollout = np.full(grid, 0.01, dtype=np.float32)
    rollout[peak] = 0.2
    return rollout / rollout.sum()  # a rollout [CLS] row sums to 1 over the patches (and CLS)


def decode_png(data: bytes) -> np.ndarray:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGB"
    return np.asarray(image)


def test_png_has_the_model_input_size() -> None:
    pixels = decode_png(render_heatmap_png(photo(), rollout_with_peak((4, 3), (1, 1)), PREPROCESSING))
    assert pixels.shape == (64, 48, 3)


def test_alpha_zero_is_the_crop_and_alpha_one_the_colormap() -> None:
    rollout = rollout_with_peak((4, 3), (0, 2))
    crop = preprocess(photo(), PREPROCESSING)
    plain = decode_png(render_heatmap_png(photo(), rollout, PREPROCESSING, alpha=0.0))
    np.testing.assert_array_equal(plain, crop)
    colours = decode_png(render_heatmap_png(photo(), rollout, PREPROCESSING, alpha=1.0))
    assert {tuple(c) for c in colours.reshape(-1, 3)} <= {tuple(c) for c in COLORMAP}


def test_hottest_patch_is_drawn_where_it_is() -> None:
    grid, peak = (4, 3), (3, 0)  # bottom-left patch
    colours = heatmap_overlay(photo(), rollout_with_peak(grid, peak), PREPROCESSING, alpha=1.0)
    level_of = {tuple(colour): level for level, colour in enumerate(COLORMAP)}
    levels = np.array([level_of[tuple(c)] for c in colours.reshape(-1, 3)]).reshape(colours.shape[:2])
    patch_h, patch_w = 64 // grid[0], 48 // grid[1]
    hottest_y, hottest_x = np.unravel_index(levels.argmax(), levels.shape)
    assert (hottest_y // patch_h, hottest_x // patch_w) == peak
    assert levels[int((peak[0] + 0.5) * patch_h), int((peak[1] + 0.5) * patch_w)] >= 240
    assert levels[0, -1] == 0  # the far corner is a cold patch


def test_display_scaling_ignores_the_maps_scale() -> None:
    rollout = np.random.default_rng(1).random((4, 3)).astype(np.float32)
    assert render_heatmap_png(photo(), rollout, PREPROCESSING) == render_heatmap_png(
        photo(), rollout * 1000.0 + 5.0, PREPROCESSING
    )


def test_constant_map_is_uniformly_cold() -> None:
    colours = heatmap_overlay(photo(), np.full((4, 3), 0.25), PREPROCESSING, alpha=1.0)
    assert (colours == COLORMAP[0]).all()


def test_colormap_gets_brighter_from_cold_to_hot() -> None:
    luminance = COLORMAP.astype(float) @ np.array([0.2126, 0.7152, 0.0722])
    assert COLORMAP.shape == (256, 3) and COLORMAP.dtype == np.uint8
    assert (np.diff(luminance) > -0.5).all() and luminance[-1] > luminance[0] + 200


def test_normalise_spans_zero_to_one() -> None:
    values = normalise(np.array([[2.0, 4.0], [3.0, 6.0]]))
    assert values.min() == 0.0 and values.max() == 1.0 and values.dtype == np.float32


@pytest.mark.parametrize(
    ("rollout", "alpha"),
    [(np.zeros(12), 0.5), (np.zeros((0, 3)), 0.5), (np.full((2, 2), np.nan), 0.5), (np.ones((2, 2)), 1.5)],
)
def test_bad_arguments_are_refused(rollout: np.ndarray, alpha: float) -> None:
    with pytest.raises(ValueError):
        render_heatmap_png(photo(), rollout, PREPROCESSING, alpha=alpha)
