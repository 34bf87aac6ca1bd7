"""Decode + resize + crop per image with the service's own imaging code, with and without JPEG draft mode.

``service.imaging.load_for_model`` decodes JPEGs at a reduced scale (libjpeg's DCT scaling) when the
result stays at least as large as the model needs; the "full decode" path is the same code with no draft
target. The normalisation itself runs inside the ONNX graph, so it is part of the engine time.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.stats import median
from service.bundle import Preprocessing
from service.imaging.decode import decode_image
from service.imaging.preprocess import load_for_model, preprocess

MAX_PIXELS = 40_000_000


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


def measure(image: Path, preprocessing: Preprocessing, repeats: int = 5) -> dict:
    """Median milliseconds with draft decoding (the service's path) and with a full decode."""
    data = image.read_bytes()

    def drafted() -> None:
        load_for_model(data, preprocessing, max_pixels=MAX_PIXELS)

    def full() -> None:
        preprocess(decode_image(data, max_pixels=MAX_PIXELS), preprocessing)

    with_draft = _time(drafted, repeats) * 1000.0
    without = _time(full, repeats) * 1000.0
    return {
        "bytes": len(data),
        "draft_ms": with_draft,
        "full_decode_ms": without,
        "draft_speedup": without / with_draft if with_draft > 0 else None,
    }
