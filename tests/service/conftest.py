"""Fixtures for the service tests: the async backend, small real bundles, and real server processes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.service.server import ServerProcess

REPO = Path(__file__).resolve().parents[2]
TINY_LABELS = ["cat", "dog", "bird", "fish", "frog"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _torch_quiet() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer ViT on 32×32 inputs, as a model directory."""
    _torch_quiet()
    import torch

    from model_export.checkpoint import ModelInfo, save_checkpoint
    from model_export.config import ViTConfig
    from model_export.model import ViT
    from service.bundle import Preprocessing

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, num_classes=5, dim=32, depth=2, heads=2, mlp_dim=64)
    preprocessing = Preprocessing(input_size=(32, 32), resize="exact", interpolation="bilinear")
    out = tmp_path_factory.mktemp("tiny") / "model"
    return save_checkpoint(out, ViT(config).eval(), ModelInfo(config, preprocessing, TINY_LABELS))


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_export.export.bundle import export_bundle

    return export_bundle(tiny_model_dir, tmp_path_factory.mktemp("tiny-bundle") / "tiny", verify=False)


@pytest.fixture(scope="session")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained default bundle when it is built, else a short digits run exported here."""
    default = REPO / "bundles" / "default"
    if (default / "manifest.json").is_file() and _is_digits(default):
        return default
    _torch_quiet()
    from model_export.export.bundle import export_bundle
    from model_export.training.config import TrainConfig
    from model_export.training.loop import run_training

    root = tmp_path_factory.mktemp("digits")
    # A small, quick recipe (about 15 s on one core) that still reaches ~90% test top-1.
    model = dict(patch_size=8, dim=64, depth=2, heads=4, mlp_dim=128)
    recipe = dict(epochs=15, warmup_epochs=1.0, lr=3e-3, augment="none", label_smoothing=0.0)
    config = TrainConfig(dataset="digits", threads=1, workers=0, **model, **recipe)
    run = run_training(config, root / "run")
    return export_bundle(run, root / "bundle", verify=False)


def _is_digits(bundle: Path) -> bool:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return manifest.get("architecture", {}).get("num_classes") == 10 and "digits" in json.dumps(
        manifest.get("training", {})
    )


@pytest.fixture(scope="session")
def server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ordinary server on the tiny bundle, shared by the read-mostly end-to-end tests."""
    process = ServerProcess(
        tiny_bundle,
        tmp_path_factory.mktemp("logs") / "server.log",
        env={"VIT_MAX_BATCH_SIZE": "8", "VIT_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024)},
    ).wait_ready()
    yield process
    process.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with their own settings; all are stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(bundle: Path, env: dict[str, str] | None = None, delay_s: float = 0.0) -> ServerProcess:
        process = ServerProcess(bundle, tmp_path / f"server-{len(started)}.log", env=env, delay_s=delay_s)
        started.append(process)
        return process.wait_ready()

    yield start
    for process in started:
        process.stop()
