"""Peer (b): LitServe with its dynamic batching wrapping the bundle's ONNX Runtime session.

Set up as LitServe's batching docs show it: ``decode_request`` → ``batch`` → ``predict`` → ``unbatch`` →
``encode_response`` with ``max_batch_size`` and ``batch_timeout``; images arrive base64 in JSON, LitServe's
documented way to send an image.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import litserve as ls
import numpy as np
import onnxruntime as ort

from bench.peers.common import Settings, preprocess, top_k

settings = Settings()


class ViTAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.session = ort.InferenceSession(
            str(settings.classify_graph()), providers=["CPUExecutionProvider"]
        )
        self.preprocessing = settings.manifest()["preprocessing"]
        self.labels = settings.labels()

    def decode_request(self, request: dict) -> np.ndarray:
        return preprocess(base64.b64decode(request["image"]), self.preprocessing)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"pixels": pixels})[0]

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(output)

    def encode_response(self, logits: np.ndarray) -> dict:
        return {"predictions": top_k(logits, self.labels, settings.top_k)}


if __name__ == "__main__":
    api = ViTAPI(
        max_batch_size=settings.max_batch_size, batch_timeout=settings.batch_timeout_s, api_path="/classify"
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host=settings.host, port=settings.port, log_level="warning", generate_client_file=False)
