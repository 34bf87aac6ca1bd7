"""Evaluate a saved run or model directory on a dataset split, recomputing what metrics.json records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from model_export.checkpoint import load_checkpoint
from model_export.training.config import TrainConfig
from model_export.training.data import DatasetError, load_dataset
from model_export.training.loop import CONFIG_FILE, ImageDataset
from model_export.training.metrics import classification_metrics, predict
from model_export.training.transforms import eval_transform


def evaluate_run(
    run_dir: Path,
    dataset: str | None = None,
    split: str = "test",
    batch_size: int = 256,
    workers: int = 0,
) -> dict[str, Any]:
    """Metrics of the model in ``run_dir`` on ``split`` of its own dataset (config.json) or ``dataset``.

    Images go through the preprocessing recorded in model.json, exactly as the exported graphs see them.
    """
    run_dir = Path(run_dir)
    model, info = load_checkpoint(run_dir)
    config_path = run_dir / CONFIG_FILE
    if config_path.is_file():
        config = TrainConfig.from_dict(json.loads(config_path.read_text()))
    elif dataset is None:
        raise ValueError(f"{run_dir} has no {CONFIG_FILE}: pass --dataset")
    else:
        config = TrainConfig()
    if dataset is not None:
        config.dataset = dataset
    data = load_dataset(config)
    if len(data.classes) != info.config.num_classes:
        raise DatasetError(
            f"{config.dataset} has {len(data.classes)} classes, the model has {info.config.num_classes}"
        )
    if split not in data.splits:
        raise DatasetError(f"{config.dataset} has no {split!r} split; it has {sorted(data.splits)}")
    loader = DataLoader(
        ImageDataset(data.splits[split], eval_transform(info.preprocessing)),
        batch_size=batch_size,
        num_workers=workers,
    )
    logits, labels = predict(
        model, loader, info.preprocessing.mean, info.preprocessing.std, torch.device("cpu")
    )
    metrics = {"split": split, **classification_metrics(logits, labels, info.labels)}
    metrics.update(dataset=data.spec, fingerprint=data.fingerprint)
    return metrics
