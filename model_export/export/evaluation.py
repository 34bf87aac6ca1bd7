"""The run's own test split, when there is one, for accuracy figures and real-image parity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_export.export.provenance import is_training_run, read_json
from service.bundle import Preprocessing

SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")
EVAL_LIMIT = 2000  # enough for a stable top-1 without making an export of a big model crawl on a CPU


@dataclass
class EvalSplit:
    images: np.ndarray | None  # uint8 [N, H, W, 3], already preprocessed to the graph's input size
    labels: np.ndarray | None
    note: str

    @property
    def available(self) -> bool:
        return self.images is not None and self.labels is not None


def load_test_split(source: Path, input_size: tuple[int, int], limit: int = EVAL_LIMIT) -> EvalSplit:
    """The test split recorded in the run's config.json; a note instead when there is none."""
    if not is_training_run(source):
        return EvalSplit(None, None, "imported checkpoint: no dataset recorded, accuracy not measured")
    try:
        from model_export.training.data import load_eval_arrays

        images, labels = load_eval_arrays(read_json(Path(source) / "config.json"), "test", limit=limit)
    except Exception as exc:  # a missing dataset must not block an export; the manifest says why
        return EvalSplit(None, None, f"test split unavailable ({type(exc).__name__}: {exc})")
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.shape[1:] != (*input_size, 3):
        note = f"test split has shape {images.shape} {images.dtype}, not the graph input"
        return EvalSplit(None, None, note)
    return EvalSplit(images, labels, f"test split: {len(images)} images (at most {limit}, seeded subset)")


def sample_photos(preprocessing: Preprocessing, count: int = len(SAMPLE_PHOTOS)) -> np.ndarray:
    """scikit-image's bundled photographs (no download) through the model's evaluation preprocessing:
    real images for checkpoints that come without a dataset."""
    from PIL import Image
    from skimage import data

    from model_export.training.transforms import eval_transform

    transform = eval_transform(preprocessing)
    photos = [transform(Image.fromarray(getattr(data, name)())) for name in SAMPLE_PHOTOS[:count]]
    return np.stack(photos)
