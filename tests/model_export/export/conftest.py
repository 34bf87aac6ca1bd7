"""Tiny models and one shared bundle: exporting takes seconds, so the bundle is built once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from model_export.checkpoint import ModelInfo, save_checkpoint
from model_export.config import ViTConfig
from model_export.export.bundle import export_bundle
from model_export.model import ViT
from service.bundle import Preprocessing

LABELS = ["ant", "bee", "cat", "dog", "eel"]


def tiny_config(**overrides) -> ViTConfig:
    values = dict(image_size=32, patch_size=8, num_classes=5, dim=32, depth=2, heads=2, mlp_dim=64)
    values.update(overrides)
    return ViTConfig(**values)


def make_checkpoint(directory: Path, config: ViTConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = ViT(config).eval()
    preprocessing = Preprocessing(
        input_size=config.image_size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    info = ModelInfo(config, preprocessing, LABELS[: config.num_classes], {"format": "test", "seed": seed})
    return save_checkpoint(directory, model, info)


def make_run(directory: Path, config: ViTConfig) -> Path:
    """A model directory shaped like a training run (config/metrics/data JSON beside the weights)."""
    make_checkpoint(directory, config)
    (directory / "config.json").write_text(json.dumps({"dataset": "none:test", "seed": 3, "epochs": 1}))
    (directory / "metrics.json").write_text(json.dumps({"split": "test", "top1": 0.5}))
    (directory / "data.json").write_text(json.dumps({"fingerprint": "abc123", "seed": 3}))
    return directory


@pytest.fixture(autouse=True)
def _few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", tiny_config())


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, checkpoint) -> Path:
    """fp32 + fp16 + int8 graphs of the tiny model (read-only: copy it before changing anything)."""
    torch.set_num_threads(1)
    return export_bundle(checkpoint, tmp_path_factory.mktemp("bundles") / "tiny", fp16=True, int8=True)


@pytest.fixture
def bundle_copy(bundle, tmp_path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "copy"))
