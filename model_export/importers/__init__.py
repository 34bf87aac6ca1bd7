"""Checkpoint importers: one module per foreign format, each converting to this project's layout.

``load_foreign(fmt, src)`` gives the ViT and its ``ModelInfo``; ``import_checkpoint(fmt, src, out)``
also writes the model directory (model.json + labels.json + weights.safetensors) atomically.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from model_export.checkpoint import ModelInfo, save_checkpoint
from model_export.importers.common import (
    CheckpointError,
    Converted,
    build_model,
    parse_image_size,
    renormalise,
    resize_preprocessing,
)
from model_export.importers.labels import choose_labels
from model_export.model import ViT
from service.bundle import file_sha256

FORMATS = ("hf", "timm", "deit", "npz", "torchvision")

__all__ = ["FORMATS", "CheckpointError", "import_checkpoint", "load_foreign", "read_foreign"]


def read_foreign(fmt: str, src: Path | str, heads: int | None = None) -> Converted:
    """The checkpoint converted to our layout at its own resolution, before any model is built."""
    if fmt not in FORMATS:
        raise CheckpointError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}")
    module = importlib.import_module(f"model_export.importers.{fmt}")
    return module.load(Path(src), heads=heads)


def load_foreign(
    fmt: str,
    src: Path | str,
    *,
    image_size: int | Sequence[int] | str | None = None,
    heads: int | None = None,
    labels: Sequence[str] | Path | str | None = None,
    preprocessing: str | None = None,
) -> tuple[ViT, ModelInfo]:
    """Convert a foreign checkpoint to this project's ViT (in eval mode) and what it needs to run.

    ``image_size`` loads at another resolution (position embeddings resampled in 2-D); ``heads``
    overrides the head count where the weights cannot tell; ``labels`` is a file or a list of names;
    ``preprocessing`` ("imagenet" or "inception") overrides the recorded normalisation.
    """
    converted = read_foreign(fmt, src, heads=heads)
    size = _size(image_size)
    model, config = build_model(converted, size)
    pre = converted.preprocessing
    if tuple(config.image_size) != tuple(pre.input_size):
        pre = resize_preprocessing(pre, config.image_size)
    if preprocessing:
        pre = renormalise(pre, preprocessing)
    names = choose_labels(config.num_classes, converted.labels, labels)
    src_path = Path(src)
    source = {
        "format": fmt,
        "path": str(src_path),
        "sha256": file_sha256(src_path) if src_path.is_file() else None,
        "trained_image_size": list(converted.config.image_size),
        "params": model.num_params(),
        **converted.source,
    }
    return model, ModelInfo(config=config, preprocessing=pre, labels=names, source=source)


def import_checkpoint(
    fmt: str, src: Path | str, out: Path | str, *, overwrite: bool = False, **options
) -> Path:
    """Convert and write a model directory at ``out``; on any error nothing is left at ``out``."""
    model, info = load_foreign(fmt, src, **options)
    return save_checkpoint(Path(out), model, info, overwrite=overwrite)


def _size(value: int | Sequence[int] | str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_image_size(value)
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))
