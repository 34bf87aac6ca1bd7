"""A model directory: the common currency of import, training and export.

```
CKPT/
  model.json          {"architecture": ViTConfig, "preprocessing": Preprocessing, "source": {...}}
  labels.json         class names in head order
  weights.safetensors this project's ViT layout (see model_export.model)
```
Imported checkpoints and training runs both have this shape, so ``vit-export export`` takes either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model_export.atomic import atomic_directory
from model_export.config import ViTConfig
from model_export.model import ViT
from service.bundle import Preprocessing

MODEL_FILE = "model.json"
LABELS_FILE = "labels.json"
WEIGHTS_FILE = "weights.safetensors"


@dataclass
class ModelInfo:
    config: ViTConfig
    preprocessing: Preprocessing
    labels: list[str]
    source: dict[str, Any] = field(default_factory=dict)


def write_model_files(directory: Path, model: ViT, info: ModelInfo) -> None:
    """Write model.json, labels.json and weights.safetensors into an existing directory."""
    if len(info.labels) != info.config.num_classes:
        raise ValueError(f"{len(info.labels)} labels for {info.config.num_classes} classes")
    directory = Path(directory)
    meta = {
        "architecture": info.config.to_dict(),
        "preprocessing": info.preprocessing.to_dict(),
        "source": info.source,
    }
    (directory / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (directory / LABELS_FILE).write_text(json.dumps(info.labels, indent=1) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))


def save_checkpoint(out_dir: Path, model: ViT, info: ModelInfo, overwrite: bool = False) -> Path:
    with atomic_directory(Path(out_dir), overwrite=overwrite) as staging:
        write_model_files(staging, model, info)
    return Path(out_dir)


def read_model_info(directory: Path) -> ModelInfo:
    directory = Path(directory)
    meta_path = directory / MODEL_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory} is not a model directory: no {MODEL_FILE}")
    meta = json.loads(meta_path.read_text())
    labels = json.loads((directory / LABELS_FILE).read_text())
    return ModelInfo(
        config=ViTConfig.from_dict(meta["architecture"]),
        preprocessing=Preprocessing.from_dict(meta["preprocessing"]),
        labels=[str(x) for x in labels],
        source=dict(meta.get("source", {})),
    )


def load_checkpoint(directory: Path, image_size: tuple[int, int] | None = None) -> tuple[ViT, ModelInfo]:
    """Load a model directory; with ``image_size`` the position embeddings are resampled to it."""
    info = read_model_info(directory)
    if image_size is not None:
        info.config.image_size = tuple(image_size)  # type: ignore[assignment]
        info.config.__post_init__()
    model = ViT(info.config)
    state = load_file(str(Path(directory) / WEIGHTS_FILE))
    model.load_state_dict_resampled(state)
    model.eval()
    return model, info


def count_parameters(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in state.values())
