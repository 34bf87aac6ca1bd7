"""The ViT service's classifier as a Ray Serve application: same bundle loader, engine and preprocessing.

Ray Serve replaces the service's own batcher and HTTP layer: ``@serve.batch`` gathers concurrent requests
into one engine run, and Serve's autoscaler adds replicas (one GPU each when ``num_gpus`` is 1) as the
ongoing requests per replica grow. The HTTP contract is the plain service's ``POST /classify`` (raw
``image/*`` body, ``?top_k=``), with the same response body and error format.

    serve run deploy/ray/config.yaml                         # from the repository root
    python -m deploy.ray.serve_app --bundle bundles/default  # the same, without a config file
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator
from ray import serve
from ray.serve import Application
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.bundle.loader import load_bundle
from service.engine import Engine, EngineOptions
from service.imaging import ImageError, load_for_model
from service.inference import softmax

DEFAULT_MAX_BATCH_SIZE = 16
REPOSITORY = Path(__file__).resolve().parents[2]


class AppArgs(BaseModel):
    """Arguments of the application builder (``args:`` in config.yaml, or ``key=value`` to ``serve run``)."""

    bundle: Path = Path(os.environ.get("VIT_BUNDLE", "bundles/default"))
    variant: str = "fp32"
    num_gpus: float = Field(0, ge=0, description="GPUs per replica; 1 on GPU nodes")
    num_cpus: float = Field(1, ge=0)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(4, ge=1)
    target_ongoing_requests: float = Field(16, gt=0)
    max_batch_size: int = Field(DEFAULT_MAX_BATCH_SIZE, ge=1)
    batch_wait_timeout_s: float = Field(0.005, ge=0)
    providers: list[str] = Field(default_factory=list, description="empty: TensorRT, CUDA, CPU if present")
    intra_op_threads: int = Field(0, ge=0)
    trt_cache_dir: Path | None = None
    max_image_pixels: int = Field(40_000_000, ge=1)

    @field_validator("bundle")
    @classmethod
    def _from_repository(cls, value: Path) -> Path:
        """Relative bundle paths name bundles of this checkout (replicas do not share the caller's cwd)."""
        return value if value.is_absolute() else REPOSITORY / value


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def bucket_sizes(max_batch_size: int) -> list[int]:
    """Powers of two up to the largest batch, as the service pads: few shapes for TensorRT profiles."""
    sizes, size = [], 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch_size]


@serve.deployment(
    name="VitClassifier",
    max_ongoing_requests=64,
    graceful_shutdown_timeout_s=30,
    health_check_period_s=10,
)
class VitClassifier:
    def __init__(self, args: AppArgs) -> None:
        self.args = args
        self.bundle = load_bundle(args.bundle, args.variant)
        self.preprocessing = self.bundle.manifest.preprocessing
        options = EngineOptions(
            providers=args.providers,
            buckets=bucket_sizes(args.max_batch_size),
            intra_op_threads=args.intra_op_threads,
            trt_cache_dir=args.trt_cache_dir,
        )
        spec = self.bundle.classify
        self.engine = Engine(self.bundle.graph_path(spec), spec, self.preprocessing.input_size, options)
        self.engine.warmup()
        self.classify_batch.set_max_batch_size(args.max_batch_size)
        self.classify_batch.set_batch_wait_timeout_s(args.batch_wait_timeout_s)

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=0.005)
    async def classify_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """One engine run for every request Serve gathered; off the event loop so the replica keeps
        accepting requests (and forming the next batch) while the engine works."""
        logits = (await asyncio.to_thread(self.engine.run, images))["logits"]
        return list(logits)

    def predictions(self, logits: np.ndarray, top_k: int) -> list[dict[str, Any]]:
        probs = softmax(logits)
        order = np.argsort(-probs, kind="stable")[:top_k]
        return [{"label": self.bundle.labels[i], "index": int(i), "score": float(probs[i])} for i in order]

    async def __call__(self, request: Request) -> Response:
        if request.method != "POST" or request.url.path.rstrip("/") != "/classify":
            return error(404, "not_found", f"{request.method} {request.url.path} is not served here")
        try:
            top_k = int(request.query_params.get("top_k", 5))
        except ValueError:
            return error(422, "invalid_parameter", "top_k must be an integer")
        if not 1 <= top_k <= len(self.bundle.labels):
            return error(422, "invalid_parameter", f"top_k must be between 1 and {len(self.bundle.labels)}")
        data = await request.body()
        started = time.perf_counter()
        try:
            pixels, _ = await asyncio.to_thread(
                load_for_model, data, self.preprocessing, max_pixels=self.args.max_image_pixels
            )
        except ImageError as exc:
            return error(exc.status, exc.code, exc.message)
        logits = await self.classify_batch(pixels)
        manifest = self.bundle.manifest
        body = {
            "model": manifest.name,
            "version": manifest.version,
            "predictions": self.predictions(logits, top_k),
        }
        headers = {"Server-Timing": f"total;dur={(time.perf_counter() - started) * 1000:.1f}"}
        return JSONResponse(body, headers=headers)


def build_app(args: dict[str, Any]) -> Application:
    """Ray Serve application builder: ``import_path: deploy.ray.serve_app:build_app``."""
    parsed = AppArgs.model_validate(args)
    deployment = VitClassifier.options(
        ray_actor_options={"num_gpus": parsed.num_gpus, "num_cpus": parsed.num_cpus},
        autoscaling_config={
            "min_replicas": parsed.min_replicas,
            "max_replicas": parsed.max_replicas,
            "target_ongoing_requests": parsed.target_ongoing_requests,
            "upscale_delay_s": 10,
            "downscale_delay_s": 300,
        },
    )
    return deployment.bind(parsed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=Path(os.environ.get("VIT_BUNDLE", "bundles/default")))
    parser.add_argument("--host", default="127.0.0.1", help="address of Serve's HTTP proxy")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--address", default="local", help="'local' starts a Ray node; 'auto' joins one")
    parser.add_argument("--node-ip-address", default="127.0.0.1", help="this node's address (local only)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local node (default all)")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per replica")
    parser.add_argument("--max-replicas", type=int, default=4)
    parser.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE)
    parser.add_argument("--intra-op-threads", type=int, default=0)
    options = parser.parse_args(argv)

    import ray

    # Replicas import this module by name: put the repository on their path.
    runtime_env = {"env_vars": {"PYTHONPATH": str(REPOSITORY)}}
    if options.address == "local":
        ray.init(
            address="local",
            num_cpus=options.num_cpus,
            include_dashboard=False,
            _node_ip_address=options.node_ip_address,
            runtime_env=runtime_env,
        )
    else:
        ray.init(address=options.address, runtime_env=runtime_env)
    serve.start(http_options={"host": options.host, "port": options.port})
    app = build_app(
        {
            "bundle": options.bundle.resolve(),
            "num_gpus": options.num_gpus,
            "max_replicas": options.max_replicas,
            "max_batch_size": options.max_batch_size,
            "intra_op_threads": options.intra_op_threads,
        }
    )
    serve.run(app, name="vit", route_prefix="/", blocking=True)


if __name__ == "__main__":
    main()
