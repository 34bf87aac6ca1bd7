"""Drive servers over HTTP with the load generator (a separate process) and read the service's metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.servers import RunningServer


def run_loadgen(
    url: str,
    image: Path,
    kind: str,
    *,
    content_type: str = "image/jpeg",
    mode: str = "closed",
    concurrency: int = 1,
    rate: float = 1.0,
    duration: float = 5.0,
    warmup: float = 1.0,
    max_requests: int = 20000,
) -> dict:
    """One load-generator run in its own interpreter; returns its JSON summary."""
    argv = [
        sys.executable, "-m", "bench.loadgen", "--url", url, "--image", str(image), "--kind", kind,
        "--content-type", content_type, "--mode", mode, "--concurrency", str(concurrency),
        "--rate", str(rate),
        "--duration", str(duration), "--warmup", str(warmup), "--max-requests", str(max_requests),
    ]  # fmt: skip
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=5 * (duration + warmup) + 300,
        cwd=Path(__file__).resolve().parents[1],
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def histogram_totals(metrics_text: str, name: str, labels: dict[str, str] | None = None) -> dict[str, float]:
    """``{"sum", "count"}`` of a Prometheus histogram (matching labels), 0 when absent."""
    totals = {"sum": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != name:
            continue
        for sample in family.samples:
            if labels and any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            if sample.name == f"{name}_sum":
                totals["sum"] += sample.value
            elif sample.name == f"{name}_count":
                totals["count"] += sample.value
            elif sample.name == f"{name}_bucket":
                key = f"le_{sample.labels['le']}"
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def batch_totals(server: RunningServer, batcher: str = "classify") -> dict[str, float]:
    """The service's batch-size histogram totals (images and engine runs) for one batcher."""
    try:
        text = server.get(server.spec.metrics_path or "/metrics").text
    except httpx.HTTPError:
        return {"sum": 0.0, "count": 0.0}
    return histogram_totals(text, "vit_batch_size", {"batcher": batcher})


def mean_batch(before: dict[str, float], after: dict[str, float]) -> float | None:
    runs = after["count"] - before["count"]
    return (after["sum"] - before["sum"]) / runs if runs > 0 else None


def batch_shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Share of engine runs per histogram bucket (``"≤4": 0.25`` …) between two readings."""
    runs = after["count"] - before["count"]
    if runs <= 0:
        return {}
    shares, below = {}, 0.0
    bounds = sorted((k for k in after if k.startswith("le_")), key=lambda k: float(k[3:]))
    for key in bounds:
        cumulative = after[key] - before.get(key, 0.0)
        if cumulative - below > 0:
            bound = key[3:]
            shares["≤" + (bound.removesuffix(".0") if bound != "+Inf" else "∞")] = (cumulative - below) / runs
        below = cumulative
    return shares


def closed_sweep(
    server: RunningServer,
    image: Path,
    concurrencies: list[int],
    duration: float,
    warmup: float,
    content_type: str = "image/jpeg",
    path: str | None = None,
) -> list[dict]:
    """Closed-loop levels against one server; for servers with /metrics, the mean batch each level formed."""
    rows = []
    url = server.spec.base_url + (path or server.spec.predict_path)
    for concurrency in concurrencies:
        before = batch_totals(server) if server.spec.metrics_path else None
        row = run_loadgen(
            url,
            image,
            server.spec.kind,
            content_type=content_type,
            mode="closed",
            concurrency=concurrency,
            duration=duration,
            warmup=warmup,
        )
        if before is not None:
            after = batch_totals(server)
            row["mean_batch"] = mean_batch(before, after)
            row["batch_shares"] = batch_shares(before, after)
        rows.append(row)
    return rows


def open_sweep(
    server: RunningServer, image: Path, rates: list[float], duration: float, warmup: float
) -> list[dict]:
    """Open-loop (Poisson) arrival rates against one server."""
    rows = []
    for rate in rates:
        before = batch_totals(server) if server.spec.metrics_path else None
        row = run_loadgen(
            server.spec.predict_url,
            image,
            server.spec.kind,
            mode="open",
            rate=rate,
            duration=duration,
            warmup=warmup,
        )
        if before is not None:
            row["mean_batch"] = mean_batch(before, batch_totals(server))
        rows.append(row)
    return rows
