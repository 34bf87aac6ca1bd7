"""The start-up batch cap: chosen from measured rates, and applied to both batchers and the metadata."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.batch_tuning import choose_batch_cap, measure_rates
from tests.service.test_app import client_for


def test_cap_is_the_smallest_batch_within_tolerance_of_the_best():
    # ViT-S/16 on two CPU cores (bench): flat from 2 to 8, then slower
    cpu = {1: 28.9, 2: 32.3, 4: 31.8, 8: 31.4, 16: 27.8}
    assert choose_batch_cap(cpu, tolerance=0.05) == 2
    assert choose_batch_cap(cpu, tolerance=0.15) == 1
    assert choose_batch_cap({1: 20.0, 2: 29.0, 4: 31.0, 8: 32.0}, tolerance=0.05) == 4
    # a GPU, or a tiny model: throughput keeps growing, so the cap goes as far as it still pays
    assert choose_batch_cap({1: 100.0, 8: 700.0, 32: 2400.0}, tolerance=0.05) == 32
    assert choose_batch_cap({1: 100.0, 8: 700.0, 32: 2400.0, 64: 2450.0}, tolerance=0.05) == 32
    with pytest.raises(ValueError):
        choose_batch_cap({}, tolerance=0.05)


def test_measure_rates_times_sizes_in_rounds_and_keeps_the_fastest_run():
    calls: list[int] = []
    disturbed = {1}  # the very first run is slowed down, as by a burst of background load

    def run(size: int) -> None:
        calls.append(size)
        slow = 0.02 if len(calls) in disturbed else 0.0
        time.sleep(slow + 0.002 * (1 if size < 4 else size))  # per-image cost grows past batch 2

    rates = measure_rates(run, [1, 2, 4, 8], rounds=3)
    assert calls == [1, 2, 4, 8] * 3
    assert rates[2] > rates[1] and rates[2] > rates[8] and rates[2] > 0.5 * 2 / 0.002
    assert choose_batch_cap(rates, tolerance=0.05) == 2


def _info(client: TestClient) -> dict:
    return client.get("/v1/model").json()


def test_start_up_timing_caps_both_batchers(tiny_bundle: Path, monkeypatch):
    # make the measured engine fast up to batch 2 and slow beyond, whatever this machine does
    monkeypatch.setattr(
        "service.inference.measure_rates", lambda run, sizes, rounds: {1: 10.0, 2: 20.0, 4: 12.0}
    )
    for client in client_for(tiny_bundle):
        info = _info(client)
        assert info["max_batch_size"] == 2 and info["batch_buckets"] == [1, 2, 4]
        assert info["engine_images_per_second"] == {"1": 10.0, "2": 20.0, "4": 12.0}
        service = client.app.state.service
        assert service.classify_batcher.max_batch_size == service.explain_batcher.max_batch_size == 2
        assert 'vit_max_batch_size{batcher="classify"} 2.0' in client.get("/metrics").text


def test_without_autotuning_the_configured_cap_stands(tiny_bundle: Path):
    for client in client_for(tiny_bundle, batch_autotune=False):
        info = _info(client)
        assert info["max_batch_size"] == 4 and info["engine_images_per_second"] == {}
        assert 'vit_max_batch_size{batcher="explain"} 4.0' in client.get("/metrics").text
