"""Fixtures for the deployment tests: a tiny bundle, real service processes on loopback, a test image."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LABELS = [f"class{i}" for i in range(10)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, process: subprocess.Popen | None, timeout_s: float, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if the process dies. Bounded by ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = log.read_text()[-4000:] if log and log.exists() else ""
            raise AssertionError(f"server exited with {process.returncode} before ready:\n{output}")
        try:
            if http_get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    output = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"{url} not ready after {timeout_s:.0f}s\n{output}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def small_env(**extra: str) -> dict[str, str]:
    """The environment for a child on a shared 2-core machine: few threads."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        VIT_INTRA_OP_THREADS="1",
        VIT_DECODE_WORKERS="1",
        VIT_MAX_BATCH_SIZE="4",
        VIT_PROVIDERS="CPUExecutionProvider",
    )
    env.update(extra)
    return env


def start_service(
    command: Sequence[str], bundle: Path, port: int, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    environment = small_env(VIT_BUNDLE=str(bundle)) if env is None else env
    with log.open("wb") as sink:
        return subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )


def png_bytes(seed: int = 0, size: tuple[int, int] = (48, 40)) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle of a tiny random ViT, written by the project's own exporter."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("model_export.export.bundle", reason="the bundle exporter is not in place")
    from model_export.checkpoint import ModelInfo, save_checkpoint
    from model_export.config import ViTConfig
    from model_export.export.bundle import export_bundle
    from model_export.model import ViT
    from service.bundle import Preprocessing

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        config = ViTConfig(
            image_size=(32, 32), patch_size=8, num_classes=len(LABELS), dim=32, depth=2, heads=2, mlp_dim=64
        )
        preprocessing = Preprocessing(
            input_size=(32, 32), resize="shorter_side", resize_size=36, interpolation="bilinear"
        )
        root = tmp_path_factory.mktemp("deploy-bundle")
        model = ViT(config).eval()
        save_checkpoint(root / "model", model, ModelInfo(config, preprocessing, LABELS))
        return export_bundle(root / "model", root / "bundle")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def service_url(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service (this checkout's code and virtual environment) serving the tiny bundle on loopback."""
    pytest.importorskip("service.cli", reason="the service CLI is not in place")
    port = free_port()
    log = tmp_path_factory.mktemp("service") / "service.log"
    process = start_service([sys.executable, "-m", "service.cli"], tiny_bundle, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/readyz", process, timeout_s=90, log=log)
        yield url
    finally:
        stop(process)
