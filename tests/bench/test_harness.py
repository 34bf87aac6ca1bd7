"""The benchmark harness runs end to end and writes well-formed results (not how fast anything is)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench.http import batch_shares, histogram_totals, mean_batch
from bench.report import peer_ratios, render, targets
from bench.stats import interpolate, latency_summary_ms, percentile

REPO = Path(__file__).resolve().parents[2]


def test_percentile_and_interpolation_follow_their_definitions() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([], 99) is None
    summary = latency_summary_ms([0.001, 0.003])
    assert summary["p50_ms"] == pytest.approx(2.0) and summary["mean_ms"] == pytest.approx(2.0)
    points = [(1, 10.0), (4, 40.0), (16, 64.0)]
    assert interpolate(points, 2.5) == pytest.approx(25.0)
    assert interpolate(points, 10) == pytest.approx(52.0)
    assert interpolate(points, 0.5) == 10.0 and interpolate(points, 99) == 64.0


def test_mean_batch_from_a_real_prometheus_histogram() -> None:
    registry = CollectorRegistry()
    hist = Histogram(
        "vit_batch_size", "Images per engine run", ["batcher"], buckets=(1, 2, 4, 8, 16), registry=registry
    )
    for size in (1, 4, 4):
        hist.labels(batcher="classify").observe(size)
    hist.labels(batcher="explain").observe(16)
    before = histogram_totals(generate_latest(registry).decode(), "vit_batch_size", {"batcher": "classify"})
    assert (before["sum"], before["count"]) == (9.0, 3.0)
    for size in (8, 16):
        hist.labels(batcher="classify").observe(size)
    after = histogram_totals(generate_latest(registry).decode(), "vit_batch_size", {"batcher": "classify"})
    assert mean_batch(before, after) == pytest.approx(12.0)
    assert mean_batch(after, after) is None
    assert batch_shares(before, after) == {"≤8": 0.5, "≤16": 0.5}
    assert batch_shares({"count": 0.0}, before) == pytest.approx({"≤1": 1 / 3, "≤4": 2 / 3})


def _closed(concurrency: int, rps: float, p99: float) -> dict:
    latency = {"p50_ms": p99 / 2, "p95_ms": p99, "p99_ms": p99}
    return {"concurrency": concurrency, "throughput_rps": rps, **latency, "errors": 0, "rejected_429": 0}


def test_peer_ratios_and_targets_compare_against_the_service() -> None:
    entry = {
        "status": "ok",
        "service": {"closed": [{**_closed(16, 40.0, 500.0), "efficiency": 0.9}]},
        "peers": {
            "fastapi_torch": {"status": "ok", "closed": [_closed(16, 20.0, 900.0)]},
            "litserve": {"status": "ok", "closed": [_closed(16, 50.0, 400.0)]},
            "kserve": {"status": "failed", "reason": "boom"},
        },
    }
    ratios = peer_ratios(entry)
    assert set(ratios) == {"fastapi_torch", "litserve"}
    assert ratios["fastapi_torch"][0]["throughput_ratio"] == pytest.approx(0.5)
    assert ratios["litserve"][0]["p99_ratio"] == pytest.approx(0.8)
    rows = {row[0]: row for row in targets({"models": {"m": entry}})}
    assert rows["m: service keeps ≥ 85% of the engine ceiling at saturation (c=16)"][2] == "yes"
    torch_row = next(row for key, row in rows.items() if "PyTorch" in key)
    assert torch_row[1].startswith("2.00×") and torch_row[2] == "yes"
    lit_row = next(row for key, row in rows.items() if "LitServe" in key)
    assert lit_row[2] == "**no**"


@pytest.mark.slow
def test_quick_run_writes_results_and_markdown(tmp_path: Path) -> None:
    out_dir, markdown = tmp_path / "docs" / "bench", tmp_path / "docs" / "benchmarks.md"
    argv = [
        sys.executable, "-m", "bench", "--quick", "--models", "tiny", "--peers", "none",
        "--concurrency", "1,2", "--duration", "1", "--warmup", "0.3", "--batches", "1,2", "--gemm-n", "256",
        "--images", "photo.jpg",
        "--cache", str(tmp_path / "cache"), "--out-dir", str(out_dir), "--markdown", str(markdown),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads((out_dir / "results.json").read_text())
    assert results["schema"] == 1 and results["mode"] == "quick"
    assert results["machine"]["cores"] >= 1 and results["machine"]["cpu_model"]
    assert results["hardware"]["gflops_median"] > 0
    assert results["gpu"]["measured"] is False
    tiny = results["models"]["tiny"]
    assert tiny["status"] == "ok" and tiny["flops_per_image"] > 0
    assert [row["batch"] for row in tiny["engine"]] == [1, 2]
    assert all(row["img_per_s"] > 0 and row["reps"] >= 3 for row in tiny["engine"])
    profile = tiny["engine_profile"]
    assert "MatMul" in profile["shares"] and 0 < sum(profile["shares"].values()) <= 1.0 + 1e-9

    service = tiny["service"]
    assert [row["concurrency"] for row in service["closed"]] == [1, 2]
    for row in service["closed"]:
        assert row["ok"] > 0 and row["errors"] == 0 and row["throughput_rps"] > 0
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["mean_batch"] >= 1.0  # read from the service's own batch-size histogram
        assert row["efficiency"] > 0
    assert len(service["open"]) == 2 and all(row["sent"] > 0 for row in service["open"])
    http = service["explain"]["http"]
    assert {"classify", "classify_explain", "explain"} <= set(http)
    assert all(http[key]["ok"] > 0 and http[key]["errors"] == 0 for key in http)
    assert tiny["preprocessing"]["photo.jpg"]["draft_ms"] > 0
    assert "peers" not in tiny

    text = markdown.read_text()
    for heading in (
        "# Benchmarks",
        "## Targets",
        "## Hardware limit",
        "## Engine ceiling",
        "## This service over HTTP",
        "## Explanations",
        "## Preprocessing",
        "## GPU",
    ):
        assert heading in text
    assert "not measured" in text
    for plot in ("engine.png", "open-loop.png"):
        assert (out_dir / plot).stat().st_size > 1000
        assert f"bench/{plot}" in text
    assert render(results, {"engine": "e.png", "open": "o.png"}).startswith("# Benchmarks")
