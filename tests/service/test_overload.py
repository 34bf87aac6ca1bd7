"""Under load, on a real server whose engine is held busy: batching happens, overflow → 429, slow → 504."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def post_many(url: str, count: int, params: dict | None = None) -> list[httpx.Response]:
    """``count`` concurrent /classify requests, each on its own connection."""

    def one(seed: int) -> httpx.Response:
        return httpx.post(
            f"{url}/classify",
            params=params,
            content=png(seed),
            headers={"content-type": "image/png"},
            timeout=30,
        )

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def samples(url: str, metric: str) -> dict[tuple, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        if family.name == metric
        for s in family.samples
    }


def test_concurrent_requests_are_batched(start_server, tiny_bundle: Path):
    server = start_server(tiny_bundle, env={"VIT_MAX_BATCH_SIZE": "8"}, delay_s=0.05)
    responses = post_many(server.url, 24)
    assert [r.status_code for r in responses] == [200] * 24
    sizes = samples(server.url, "vit_batch_size")
    labels = (("batcher", "classify"),)
    total = sizes[("vit_batch_size_count", labels)]
    singles = sizes[("vit_batch_size_bucket", (("batcher", "classify"), ("le", "1.0")))]
    assert sizes[("vit_batch_size_sum", labels)] == 24  # every request ran exactly once
    assert total - singles >= 1, "no batch held more than one image"
    assert total < 24
    assert (
        sizes[("vit_batch_size_bucket", (("batcher", "classify"), ("le", "8.0")))] == total
    )  # max respected


def test_queue_overflow_gets_429_and_slow_requests_504(start_server, tiny_bundle: Path):
    env = {"VIT_MAX_BATCH_SIZE": "1", "VIT_MAX_QUEUE": "1", "VIT_REQUEST_TIMEOUT_S": "0.5"}
    server = start_server(tiny_bundle, env=env, delay_s=2.0)
    responses = post_many(server.url, 3)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [429, 504, 504], [r.text for r in responses]
    for response in responses:
        code = {429: "queue_full", 504: "timeout"}[response.status_code]
        assert response.json()["error"]["code"] == code
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
    rejected = samples(server.url, "vit_rejected_requests")
    by_reason = {
        dict(labels)["reason"]: v for (name, labels), v in rejected.items() if name.endswith("_total")
    }
    assert by_reason["queue_full"] == 1 and by_reason["timeout"] == 2
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_client_disconnect_drops_its_queued_work(start_server, tiny_bundle: Path):
    server = start_server(tiny_bundle, env={"VIT_MAX_BATCH_SIZE": "1"}, delay_s=1.0)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(post_many, server.url, 1)
        deadline = time.monotonic() + 10
        while not samples(server.url, "vit_batch_size").get(
            ("vit_batch_size_count", (("batcher", "classify"),))
        ):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
            httpx.post(
                f"{server.url}/classify", content=png(7), headers={"content-type": "image/png"}, timeout=0.3
            )
        assert [r.status_code for r in running.result()] == [200]
    time.sleep(1.5)  # long enough for the abandoned request to have run, had it not been dropped
    sizes = samples(server.url, "vit_batch_size")
    assert sizes[("vit_batch_size_sum", (("batcher", "classify"),))] == 1
    rejected = samples(server.url, "vit_rejected_requests")
    assert rejected[("vit_rejected_requests_total", (("batcher", "classify"), ("reason", "cancelled")))] == 1
