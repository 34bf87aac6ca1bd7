"""A real server process on the tiny bundle: odd uploads, metrics, and rollout parity with PyTorch."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.reference import numpy_rollout
from tests.service.corpus import bad_and_odd_images
from tests.service.server import ServerProcess

CASES = bad_and_odd_images()


def png(seed: int, size: tuple[int, int] = (32, 32)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def http(server: ServerProcess):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_and_odd_images_get_their_status(http: httpx.Client, case):
    as_form = http.post("/classify", files={"file": (case.name, case.data, case.content_type)})
    as_raw = http.post("/classify", content=case.data, headers={"content-type": case.content_type})
    for response in (as_form, as_raw):
        assert response.status_code == case.expected_status, response.text
        if case.expected_code:
            assert response.json()["error"]["code"] == case.expected_code
        else:
            assert len(response.json()["predictions"]) == 5


def test_bad_images_fail_alone_in_a_batch_and_server_stays_healthy(http: httpx.Client):
    files = [("files", (c.name, c.data, c.content_type)) for c in CASES]
    response = http.post("/classify/batch", params={"top_k": 2}, files=files)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [c.name for c in CASES]
    for case, result in zip(CASES, results, strict=True):
        assert result["status"] == case.expected_status, (case.name, result)
        assert ("predictions" in result) == (case.expected_status == 200)
    assert http.get("/readyz").status_code == 200
    assert http.post("/classify", content=png(1), headers={"content-type": "image/png"}).status_code == 200


def test_metrics_parse_with_the_prometheus_parser(http: httpx.Client):
    for seed in range(3):
        http.post("/classify", content=png(seed), headers={"content-type": "image/png"})
    http.post("/classify", content=b"nope", headers={"content-type": "image/png"})
    families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    expected = ["vit_queue_depth", "vit_batch_size", "vit_queue_wait_seconds", "vit_inference_seconds"]
    expected += ["vit_rejected_requests", "vit_model_info", "http_requests", "http_request_duration_seconds"]
    for name in expected:
        assert name in families, sorted(families)
    assert families["vit_batch_size"].type == "histogram"
    requests = {
        (s.labels["handler"], s.labels["status"]): s.value
        for s in families["http_requests"].samples
        if s.name == "http_requests_total"
    }
    assert requests[("/classify", "200")] >= 3
    assert requests[("/classify", "400")] >= 1
    info = next(s for s in families["vit_model_info"].samples)
    assert info.labels["providers"] == "CPUExecutionProvider" and len(info.labels["digest"]) == 64


def test_explain_matches_numpy_rollout_of_pytorch_attention(http: httpx.Client, tiny_model_dir: Path):
    import torch

    from model_export.checkpoint import load_checkpoint
    from service.imaging import load_for_model

    model, info = load_checkpoint(tiny_model_dir)
    images = [png(seed, size) for seed, size in ((10, (32, 32)), (11, (57, 41)))]
    for data in images:
        response = http.post("/explain", files={"file": ("x.png", data, "image/png")})
        assert response.status_code == 200, response.text
        served = np.array(response.json()["map"])
        pixels, _ = load_for_model(data, info.preprocessing, max_pixels=10**7)
        mean = torch.tensor(info.preprocessing.mean).view(1, 3, 1, 1)
        std = torch.tensor(info.preprocessing.std).view(1, 3, 1, 1)
        x = (torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float() / 255 - mean) / std
        with torch.no_grad():
            logits, attentions = model.forward_with_attention(x)
        expected = numpy_rollout([a.numpy() for a in attentions], 1, info.config.grid_size)[0]
        assert served.shape == expected.shape == (4, 4)
        np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0)
        assert response.json()["label"] == info.labels[int(logits.argmax())]
        # The same map is what /classify?explain=true links to.
        linked = http.post(
            "/classify", params={"explain": True}, files={"file": ("x.png", data, "image/png")}
        )
        fetched = http.get(linked.json()["explanation"]["url"]).json()
        np.testing.assert_allclose(np.array(fetched["map"]), expected, atol=1e-5, rtol=0)
