"""Peer (c): KServe's Python model server with the bundle's ONNX Runtime session, v1 REST protocol.

Set up as KServe's custom-model docs show it: a ``kserve.Model`` whose ``load`` opens the session and whose
``predict`` takes ``{"instances": [{"image": {"b64": ...}}]}``. The v1 protocol has no server-side dynamic
batching (KServe batches through its separate agent sidecar, which needs Kubernetes), so each request runs
on its own. KServe hard-codes ``0.0.0.0`` for its REST server; the script narrows it to the loopback host.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import onnxruntime as ort
import uvicorn

from bench.peers.common import Settings, preprocess, top_k

settings = Settings()


class _LoopbackConfig(uvicorn.Config):
    def __init__(self, app, **kwargs) -> None:
        kwargs["host"] = settings.host
        super().__init__(app, **kwargs)


import kserve  # noqa: E402
import kserve.protocol.rest.server as rest_server  # noqa: E402

rest_server.uvicorn.Config = _LoopbackConfig  # type: ignore[attr-defined]


class ViTModel(kserve.Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    def load(self) -> bool:
        self.session = ort.InferenceSession(
            str(settings.classify_graph()), providers=["CPUExecutionProvider"]
        )
        self.preprocessing = settings.manifest()["preprocessing"]
        self.labels = settings.labels()
        self.ready = True
        return self.ready

    def predict(
        self, payload: dict, headers: dict | None = None, response_headers: dict | None = None
    ) -> dict:
        pixels = np.stack(
            [
                preprocess(base64.b64decode(item["image"]["b64"]), self.preprocessing)
                for item in payload["instances"]
            ]
        )
        logits = self.session.run(["logits"], {"pixels": pixels})[0]
        return {"predictions": [top_k(row, self.labels, settings.top_k) for row in logits]}


if __name__ == "__main__":
    kserve.ModelServer(http_port=settings.port, enable_grpc=False, workers=1).start([ViTModel("vit")])
