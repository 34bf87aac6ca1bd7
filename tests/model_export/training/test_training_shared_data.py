"""Real data (../shared/data, skipped when absent): a brief fine-tune of the real DeiT-Tiny on a CIFAR-10
JPEG subset read through ``folder:``; test accuracy must rise well above chance (10%)."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from model_export.importers import import_checkpoint
from model_export.training.config import TrainConfig
from model_export.training.loop import run_training

SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
DEIT_TINY = SHARED_DATA / "deit_tiny_patch16_224.safetensors"
ARCHIVES = {
    "train": SHARED_DATA / "cifar10_train_jpg.tar.gz",
    "test": SHARED_DATA / "cifar10_test_jpg.tar.gz",
}

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(p.is_file() for p in [DEIT_TINY, *ARCHIVES.values()]),
        reason=f"{SHARED_DATA} lacks CIFAR/DeiT",
    ),
]


def _extract_subset(archive: Path, root: Path, per_class: int) -> None:
    """The first ``per_class`` JPEGs of each class (``cifar10-jpg/<split>/<class>/*.jpg``)."""
    taken: Counter[str] = Counter()
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 4 or not parts[-1].endswith(".jpg"):
                continue
            if taken[parts[2]] >= per_class:
                continue
            taken[parts[2]] += 1
            target = root / parts[1] / parts[2] / parts[3]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    assert len(taken) == 10


def test_deit_tiny_finetune_on_a_cifar10_subset_beats_chance(tmp_path: Path):
    data = tmp_path / "cifar10-jpg"
    _extract_subset(ARCHIVES["train"], data, per_class=60)
    _extract_subset(ARCHIVES["test"], data, per_class=20)
    checkpoint = import_checkpoint("timm", DEIT_TINY, tmp_path / "deit-tiny")
    config = TrainConfig(
        dataset=f"folder:{data}",
        recipe="finetune",
        preset="ti",
        from_checkpoint=str(checkpoint),
        image_size=64,  # 4×4 patches; position embeddings resampled from 14×14
        interpolation="bicubic",
        epochs=3,
        batch_size=16,
        lr=0.01,
        warmup_epochs=0.2,
        val_fraction=0.0,
        amp="bf16",
        threads=1,
        workers=0,
    )
    run = run_training(config, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["count"] == 200
    assert metrics["top1"] >= 0.3, metrics["top1"]  # chance is 0.1; measured 42.5%
    assert json.loads((run / "model.json").read_text())["architecture"]["image_size"] == [64, 64]
