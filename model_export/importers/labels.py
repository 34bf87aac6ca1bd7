"""Class names for imported heads: the checkpoint's own, ImageNet-1k's, a user's file, or numbered."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from model_export.importers.common import CheckpointError

IMAGENET1K_FILE = Path(__file__).resolve().parent.parent / "resources" / "imagenet1k_labels.json"


@cache
def imagenet1k_labels() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k names in the index order of every 1k-class checkpoint (timm data, Apache-2.0)."""
    labels = json.loads(IMAGENET1K_FILE.read_text())["labels"]
    return tuple(labels)


def default_labels(num_classes: int) -> list[str]:
    if num_classes == 1000:
        return list(imagenet1k_labels())
    return [f"class_{i}" for i in range(num_classes)]


def read_labels_file(path: Path) -> list[str]:
    """A JSON list of names, or plain text with one name per line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"labels file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"labels file {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, list):
            raise CheckpointError(f"labels file {path} must hold a JSON list of names")
        return [str(x) for x in data]
    return [line.strip() for line in text.splitlines() if line.strip()]


def choose_labels(
    num_classes: int, own: list[str] | None, override: list[str] | Path | str | None
) -> list[str]:
    """Override file > the checkpoint's own names > ImageNet-1k for 1000 classes > class_N."""
    if override is not None:
        labels = read_labels_file(Path(override)) if isinstance(override, str | Path) else list(override)
        source = "--labels"
    elif own is not None:
        labels, source = own, "the checkpoint"
    else:
        labels, source = default_labels(num_classes), "the default"
    if len(labels) != num_classes:
        raise CheckpointError(f"{len(labels)} labels from {source} for a head with {num_classes} classes")
    return [str(x) for x in labels]
