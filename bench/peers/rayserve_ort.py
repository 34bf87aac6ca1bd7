"""Peer (d): Ray Serve with ``@serve.batch`` on a local single-node Ray, the bundle's ONNX Runtime session.

Set up as Ray Serve's dynamic-batching docs show it: one deployment whose ``__call__`` decodes the request
and awaits a ``@serve.batch`` method, with ``max_ongoing_requests`` well above the batch size so that
batches can fill (the batching guide's advice; Ray's default of 5 would cap every batch at 5). Ray is
started locally (dashboard off, loopback HTTP proxy).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import onnxruntime as ort
import ray
from ray import serve
from starlette.requests import Request

from bench.peers.common import Settings, preprocess, top_k

settings = Settings()


@serve.deployment(max_ongoing_requests=256)
class ViTDeployment:
    def __init__(self) -> None:
        self.session = ort.InferenceSession(
            str(settings.classify_graph()), providers=["CPUExecutionProvider"]
        )
        self.preprocessing = settings.manifest()["preprocessing"]
        self.labels = settings.labels()

    @serve.batch(max_batch_size=settings.max_batch_size, batch_wait_timeout_s=settings.batch_timeout_s)
    async def classify(self, images: list[np.ndarray]) -> list[dict]:
        logits = self.session.run(["logits"], {"pixels": np.stack(images)})[0]
        return [{"predictions": top_k(row, self.labels, settings.top_k)} for row in logits]

    async def __call__(self, request: Request) -> dict:
        if request.method == "GET":  # readiness probe: answers only once this replica serves
            return {"status": "ok"}
        return await self.classify(preprocess(await request.body(), self.preprocessing))


def _stop(*_: object) -> None:
    serve.shutdown()
    ray.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    ray.init(
        include_dashboard=False, num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", log_to_driver=False
    )
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(ViTDeployment.bind(), route_prefix="/classify")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while True:
        time.sleep(1)
