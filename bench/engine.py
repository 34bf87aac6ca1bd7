"""The engine ceiling: the bundle's graph in ONNX Runtime, in process, no HTTP, no decoding.

This is what any server wrapping the same graph can at best reach on this machine, batch size by batch
size; the service's efficiency is measured against it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.stats import median, percentile


def open_session(graph: Path, providers: list[str] | None = None, threads: int = 0) -> ort.InferenceSession:
    """ONNX Runtime with its defaults (all graph optimisations, one spinning intra-op thread per core), or
    with ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(graph), options, providers=providers or ["CPUExecutionProvider"])


def time_batch(
    session: ort.InferenceSession, pixels: np.ndarray, min_time_s: float, min_reps: int, max_reps: int
) -> list[float]:
    """Seconds per run, after one warm-up run, until both ``min_reps`` and ``min_time_s`` are met."""
    feed = {session.get_inputs()[0].name: pixels}
    session.run(None, feed)
    times: list[float] = []
    begin = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - begin < min_time_s):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return times


def ceiling(
    graph: Path,
    input_size: tuple[int, int],
    batches: list[int],
    min_time_s: float = 2.0,
    min_reps: int = 3,
    max_reps: int = 200,
    threads: int = 0,
) -> list[dict]:
    """img/s and latency of the graph at each batch size (median over repetitions)."""
    session = open_session(graph, threads=threads)
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        pixels = rng.integers(0, 256, size=(batch, *input_size, 3), dtype=np.uint8)
        times = time_batch(session, pixels, min_time_s, min_reps, max_reps)
        med = median(times)
        rows.append(
            {
                "batch": batch,
                "reps": len(times),
                "latency_ms_p50": med * 1000.0,
                "latency_ms_p95": percentile(times, 95) * 1000.0,
                "img_per_s": batch / med,
            }
        )
    return rows
