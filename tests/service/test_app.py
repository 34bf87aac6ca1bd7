"""The app in process (Starlette's TestClient): error format, API key, limits, request ids, draining."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.core.config import Settings


def png(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def client_for(bundle: Path, **overrides) -> Iterator[TestClient]:
    settings = Settings(bundle=bundle, max_batch_size=4, intra_op_threads=1, decode_workers=1, **overrides)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.05)
        yield client


@pytest.fixture(scope="module")
def client(tiny_bundle: Path) -> Iterator[TestClient]:
    yield from client_for(tiny_bundle, max_upload_bytes=50_000)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body


def test_classify_raw_and_multipart_agree(client: TestClient):
    data = png()
    raw = client.post("/classify?top_k=5", content=data, headers={"content-type": "image/png"})
    form = client.post("/classify", files={"file": ("x.png", data, "image/png")})
    assert raw.status_code == form.status_code == 200
    assert raw.json()["predictions"] == form.json()["predictions"]
    scores = [p["score"] for p in raw.json()["predictions"]]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-6)
    assert "explanation" not in raw.json()


def test_errors_are_json_with_codes(client: TestClient):
    headers = {"content-type": "image/png"}
    assert_error(client.post("/classify?top_k=0", content=png(), headers=headers), 422, "invalid_parameters")
    assert_error(client.post("/classify?top_k=6", content=png(), headers=headers), 422, "invalid_parameters")
    assert_error(
        client.post("/classify?explain=maybe", content=png(), headers=headers), 422, "invalid_parameters"
    )
    assert_error(client.post("/classify", content=b"hello", headers={"content-type": "text/plain"}), 415,
                 "unsupported_media_type")  # fmt: skip
    assert_error(
        client.post("/classify", files={"other": ("x.png", png(), "image/png")}), 422, "invalid_parameters"
    )
    assert_error(client.post("/classify", content=b"GIF89a-nope", headers=headers), 400, "invalid_image")
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.put("/classify"), 405, "method_not_allowed")
    assert_error(client.get("/explain/unknown-id"), 404, "explanation_not_found")


def test_upload_byte_limit_by_header_and_while_streaming(client: TestClient):
    big = png(400, 400, seed=1)
    assert len(big) > 50_000
    assert_error(client.post("/classify", content=big, headers={"content-type": "image/png"}), 413,
                 "payload_too_large")  # fmt: skip

    def chunks():  # no Content-Length: the limit must hold while reading
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    response = client.post("/classify", content=chunks(), headers={"content-type": "image/png"})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


def test_request_id_is_echoed_or_minted(client: TestClient):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    minted = client.get("/healthz").headers["x-request-id"]
    assert len(minted) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "bad id\n"}).headers["x-request-id"] != "bad id\n"


def test_explanation_round_trip_and_png(client: TestClient):
    response = client.post("/classify?explain=true&top_k=1", files={"file": ("x.png", png(), "image/png")})
    assert response.status_code == 200
    ref = response.json()["explanation"]
    assert ref["url"] == f"/explain/{ref['id']}"
    body = client.get(ref["url"]).json()
    assert body["method"] == "attention_rollout" and body["grid"] == [4, 4]
    assert body["label"] == response.json()["predictions"][0]["label"]
    image = client.get(ref["url"], params={"format": "png"})
    assert image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (32, 32)


def test_model_info_reports_digest_and_providers(client: TestClient, tiny_bundle: Path):
    import hashlib

    info = client.get("/v1/model").json()
    assert info["bundle_digest"] == hashlib.sha256((tiny_bundle / "manifest.json").read_bytes()).hexdigest()
    assert info["providers"] == ["CPUExecutionProvider"]
    assert info["labels"] == ["cat", "dog", "bird", "fish", "frog"]
    assert info["input_size"] == [32, 32] and info["variant"] == "fp32"


def test_draining_refuses_new_work_but_keeps_health(client: TestClient):
    client.app.state.draining = True
    try:
        assert_error(client.get("/readyz"), 503, "draining")
        assert_error(
            client.post("/classify", content=png(), headers={"content-type": "image/png"}), 503, "draining"
        )
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
    finally:
        client.app.state.draining = False
    assert client.get("/readyz").status_code == 200


def test_api_key_guards_everything_but_health_and_metrics(tiny_bundle: Path):
    for client in client_for(tiny_bundle, api_key="k3y"):
        headers = {"content-type": "image/png"}
        assert_error(client.post("/classify", content=png(), headers=headers), 401, "unauthorized")
        assert_error(client.get("/v1/model", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        assert (
            client.post("/classify", content=png(), headers={**headers, "X-API-Key": "k3y"}).status_code
            == 200
        )
        assert client.get("/v1/model", headers={"Authorization": "Bearer k3y"}).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_not_ready_until_loaded(tmp_path: Path):
    settings = Settings(bundle=tmp_path / "missing", intra_op_threads=1)
    with TestClient(create_app(settings, exit_on_load_error=False)) as client:
        deadline = time.monotonic() + 10
        while client.app.state.load_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert_error(client.get("/readyz"), 503, "load_failed")
        assert_error(
            client.post("/classify", content=png(), headers={"content-type": "image/png"}), 503, "not_ready"
        )
        assert client.get("/healthz").status_code == 200


@pytest.fixture(scope="module")
def variant_bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_export.export.bundle import export_bundle

    out = tmp_path_factory.mktemp("variants") / "tiny-variants"
    return export_bundle(tiny_model_dir, out, fp16=True, int8=True, verify=False)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["fp16", "int8"])
def test_reduced_precision_variants_are_served(variant_bundle: Path, variant: str):
    for client in client_for(variant_bundle, variant=variant):
        info = client.get("/v1/model").json()
        assert info["variant"] == variant
        response = client.post("/classify?explain=true", content=png(), headers={"content-type": "image/png"})
        assert response.status_code == 200, response.text
        scores = [p["score"] for p in response.json()["predictions"]]
        assert sum(scores) == pytest.approx(1.0, abs=1e-4)
        rollout = client.get(response.json()["explanation"]["url"]).json()
        assert rollout["grid"] == [4, 4] and 0 < sum(map(sum, rollout["map"])) < 1


def test_model_info_leaves_out_accuracy_the_bundle_did_not_measure(tiny_bundle: Path, tmp_path: Path):
    import json
    import shutil

    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    for graph in manifest["graphs"]:
        graph["accuracy"] = {"test_top1": None, "delta_top1_vs_fp32": None}  # as older exports wrote
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    for client in client_for(bundle):
        response = client.get("/v1/model")
        assert response.status_code == 200, response.text
        assert response.json()["accuracy"] == {}
