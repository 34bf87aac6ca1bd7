"""The trained digits bundle, served: held-out test digits sent as PNG files get the recorded accuracy."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

MARGIN = 0.02  # resampling in Pillow vs the export's evaluation may flip a borderline digit or two
FILES_PER_REQUEST = 30


def encode_png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_held_out_digits_top1(start_server, digits_bundle: Path):
    from model_export.training.config import TrainConfig
    from model_export.training.data import load_dataset

    manifest = json.loads((digits_bundle / "manifest.json").read_text())
    recorded = manifest["metrics"]["top1"]
    config = TrainConfig.from_dict(json.loads((digits_bundle / manifest["training"]["config"]).read_text()))
    test = load_dataset(config).splits["test"]
    assert test.arrays is not None and len(test) > 100

    server = start_server(digits_bundle, env={"VIT_MAX_BATCH_SIZE": "16"})
    predicted: list[int] = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        labels = client.get("/v1/model").json()["labels"]
        for start in range(0, len(test), FILES_PER_REQUEST):
            chunk = test.arrays[start : start + FILES_PER_REQUEST]
            files = [("files", (f"{start + i}.png", encode_png(a), "image/png")) for i, a in enumerate(chunk)]
            response = client.post("/classify/batch", params={"top_k": 1}, files=files)
            assert response.status_code == 200
            predicted += [int(r["predictions"][0]["index"]) for r in response.json()["results"]]
    accuracy = float(np.mean(np.array(predicted) == test.labels))
    assert labels == [str(i) for i in range(10)]
    assert accuracy >= recorded - MARGIN, (accuracy, recorded)
    assert accuracy >= 0.8  # a trained model, not chance
