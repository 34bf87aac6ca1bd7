"""An attention-rollout map drawn over the crop the model saw, as PNG bytes.

The map is min-max normalised to [0, 1] for display only (the API's JSON keeps the raw values), upsampled
to the crop with bilinear interpolation, coloured with an 'inferno'-like colormap (dark purple = little
attention, pale yellow = most) and alpha-blended over the image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from service.bundle import Preprocessing
from service.imaging.preprocess import preprocess

# matplotlib's 'inferno' sampled at 0, 1/8, ..., 1; interpolated linearly to 256 entries.
_INFERNO_ANCHORS = np.array(
    [
        (0, 0, 4),
        (33, 12, 74),
        (87, 16, 110),
        (138, 34, 106),
        (188, 55, 84),
        (228, 90, 49),
        (249, 142, 9),
        (249, 203, 53),
        (252, 255, 164),
    ],
    dtype=np.float64,
)


def _build_lut(anchors: np.ndarray) -> np.ndarray:
    at = np.linspace(0.0, 1.0, len(anchors))
    levels = np.linspace(0.0, 1.0, 256)
    channels = [np.interp(levels, at, anchors[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=1)).astype(np.uint8)


COLORMAP: np.ndarray = _build_lut(_INFERNO_ANCHORS)  # [256, 3] uint8


def normalise(rollout: np.ndarray) -> np.ndarray:
    """Float32 copy scaled to [0, 1] (min -> 0, max -> 1); a constant map becomes all zeros."""
    values = np.asarray(rollout, dtype=np.float32)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"rollout must be a non-empty 2-D grid, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("rollout contains NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def colorize(levels: np.ndarray) -> np.ndarray:
    """[H, W] values in [0, 1] -> [H, W, 3] uint8 colours."""
    index = np.rint(np.clip(levels, 0.0, 1.0) * 255.0).astype(np.uint8)
    return COLORMAP[index]


def heatmap_overlay(
    image: Image.Image, rollout: np.ndarray, preprocessing: Preprocessing, *, alpha: float = 0.5
) -> np.ndarray:
    """uint8 [H, W, 3]: the preprocessed crop blended with the coloured, upsampled rollout."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    base = preprocess(image, preprocessing)
    height, width = base.shape[:2]
    grid = Image.fromarray(normalise(rollout))  # mode F
    upsampled = np.asarray(grid.resize((width, height), resample=Image.Resampling.BILINEAR))
    colours = colorize(upsampled).astype(np.float32)
    blended = base.astype(np.float32) * (1.0 - alpha) + colours * alpha
    return np.rint(blended).astype(np.uint8)


def render_heatmap_png(
    image: Image.Image, rollout: np.ndarray, preprocessing: Preprocessing, *, alpha: float = 0.5
) -> bytes:
    """PNG bytes of :func:`heatmap_overlay`, at the model's input size."""
    buffer = io.BytesIO()
    Image.fromarray(heatmap_overlay(image, rollout, preprocessing, alpha=alpha)).save(buffer, format="PNG")
    return buffer.getvalue()
