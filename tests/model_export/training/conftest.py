"""Fixtures for training tests, reusable by other stages' tests:

- ``tiny_config(**overrides)``: a TrainConfig for a very small ViT on a digits subset (seconds to train);
- ``tiny_run``: one finished tiny digits run directory (session-scoped);
- ``digits_run``: a SHORTENED run of the embedded default (default architecture and recipe, fewer
  epochs), trained once per session: a realistic, accurate run directory for export/evaluate tests;
- ``make_image_folder`` / ``write_cifar10_dir``: generated datasets in the real on-disk formats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from model_export.training.config import TrainConfig
from model_export.training.loop import run_training
from tests.model_export.training.training_fixtures import SHORT_DEFAULT_EPOCHS, TINY, write_image_folder


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """The test machine's cores are shared: one intra-op thread keeps runs fast and deterministic.
    (Runs set their own recorded thread count; other test modules get theirs back afterwards.)"""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_config() -> Callable[..., TrainConfig]:
    def make(**overrides) -> TrainConfig:
        return TrainConfig(**{**TINY, **overrides})

    return make


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "run"
    return run_training(TrainConfig(**TINY), out)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits") / "run"
    return run_training(TrainConfig(dataset="digits", epochs=SHORT_DEFAULT_EPOCHS, threads=1), out)


@pytest.fixture
def make_image_folder() -> Callable[..., Path]:
    return write_image_folder
