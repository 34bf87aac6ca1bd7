"""How to launch this service and each peer server for one model (argv, environment, routes, envelope)."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.models import PreparedModel
from bench.servers import ServerSpec, free_port
from bench.venvs import PEER_REQUIREMENTS, venv_python

PEERS = tuple(PEER_REQUIREMENTS)  # fastapi_torch, litserve, kserve, rayserve
PEER_TITLES = {
    "service": "this service",
    "fastapi_torch": "FastAPI + PyTorch eager (per request)",
    "litserve": "LitServe (batching) + ORT",
    "kserve": "KServe model server (v1) + ORT",
    "rayserve": "Ray Serve @serve.batch + ORT",
    "service_fixed16": "this service, VIT_BATCH_AUTOTUNE=false (batches up to 16)",
    "service_nospin": "this service, VIT_ORT_SPINNING=false",
}
PEER_ROUTES = {
    # peer -> (predict path, ready path, request envelope)
    "fastapi_torch": ("/classify", "/health", "raw"),
    "litserve": ("/classify", "/health", "json_b64"),
    "kserve": ("/v1/models/vit:predict", "/v1/models/vit", "kserve_v1"),
    "rayserve": ("/classify", "/classify", "raw"),
}


def service_spec(
    model: PreparedModel,
    max_batch_size: int,
    max_batch_delay_ms: float,
    extra_env: dict[str, str] | None = None,
) -> ServerSpec:
    port = free_port()
    vit_serve = Path(sys.executable).parent / "vit-serve"
    env = {
        "VIT_MAX_BATCH_SIZE": str(max_batch_size),
        "VIT_MAX_BATCH_DELAY_MS": str(max_batch_delay_ms),
        "VIT_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    return ServerSpec(
        name="service", port=port, predict_path="/classify", ready_path="/readyz", kind="raw",
        metrics_path="/metrics", env=env,
        argv=[str(vit_serve), "--bundle", str(model.bundle), "--host", "127.0.0.1", "--port", str(port)],
    )  # fmt: skip


def peer_spec(
    peer: str, model: PreparedModel, venvs: Path, max_batch_size: int, max_batch_delay_ms: float
) -> ServerSpec:
    port = free_port()
    predict, ready, kind = PEER_ROUTES[peer]
    script = Path(__file__).resolve().parent / "peers" / (peer if peer == "fastapi_torch" else f"{peer}_ort")
    env = {
        "BENCH_BUNDLE": str(model.bundle.resolve()),
        "BENCH_MODEL_DIR": str(model.model_dir.resolve()) if model.model_dir else "",
        "BENCH_HOST": "127.0.0.1",
        "BENCH_PORT": str(port),
        "BENCH_MAX_BATCH_SIZE": str(max_batch_size),
        "BENCH_BATCH_TIMEOUT_MS": str(max_batch_delay_ms),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    return ServerSpec(
        name=peer,
        port=port,
        predict_path=predict,
        ready_path=ready,
        kind=kind,
        env=env,
        argv=[str(venv_python(venvs, peer).absolute()), str(script.with_suffix(".py"))],
    )
