"""What every peer shares: its settings from the environment, the bundle's preprocessing, the reply.

The preprocessing follows the bundle manifest exactly as the service does (Pillow resize with the
manifest's filter, centre crop for ``shorter_side``, uint8 RGB out; mean/std are inside the graph), but
without JPEG draft decoding, which is what a peer written from its framework's docs would do.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class Settings:
    """Peer settings, passed by the harness as ``BENCH_*`` environment variables."""

    def __init__(self) -> None:
        self.bundle = Path(os.environ.get("BENCH_BUNDLE", "."))
        self.model_dir = Path(os.environ.get("BENCH_MODEL_DIR", "."))
        self.host = os.environ.get("BENCH_HOST", "127.0.0.1")
        self.port = int(os.environ.get("BENCH_PORT", "8000"))
        self.max_batch_size = int(os.environ.get("BENCH_MAX_BATCH_SIZE", "16"))
        self.batch_timeout_s = float(os.environ.get("BENCH_BATCH_TIMEOUT_MS", "5")) / 1000.0
        self.top_k = int(os.environ.get("BENCH_TOP_K", "5"))

    def manifest(self) -> dict:
        return json.loads((self.bundle / "manifest.json").read_text())

    def labels(self) -> list[str]:
        return json.loads((self.bundle / self.manifest().get("labels_file", "labels.json")).read_text())

    def classify_graph(self) -> Path:
        for graph in self.manifest()["graphs"]:
            if graph["purpose"] == "classify" and graph.get("variant", "fp32") == "fp32":
                return self.bundle / graph["file"]
        raise FileNotFoundError(f"{self.bundle} has no fp32 classify graph")


def preprocess(data: bytes, preprocessing: dict) -> np.ndarray:
    """Encoded image bytes -> [H, W, 3] uint8 RGB as the manifest's preprocessing says."""
    height, width = preprocessing["input_size"]
    resample = FILTERS[preprocessing.get("interpolation", "bicubic")]
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        if preprocessing.get("resize", "exact") == "shorter_side":
            short = int(preprocessing["resize_size"])
            scale = short / min(image.size)
            size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
            image = image.resize(size, resample)
            left = (image.width - width) // 2
            top = (image.height - height) // 2
            image = image.crop((left, top, left + width, top + height))
        else:
            image = image.resize((width, height), resample)
        return np.asarray(image, dtype=np.uint8)


def top_k(logits: np.ndarray, labels: list[str], k: int) -> list[dict]:
    """Softmax over one row of logits, the k best as ``{"label", "index", "score"}``."""
    shifted = np.exp(logits - logits.max())
    probs = shifted / shifted.sum()
    best = np.argsort(-probs)[:k]
    return [{"label": labels[i], "index": int(i), "score": float(probs[i])} for i in best]
