"""Choose the batcher's batch cap from the engine's own measured speed at each bucket.

A larger batch is not always faster: on a 2-core CPU ViT-S/16 ran at 32 img/s at batch 2-8 and at 28 at
batch 16 (the activations stop fitting in cache), while on a GPU throughput keeps growing with the batch.
So after warm-up the service times each bucket and lets batches grow only as far as they still pay: the
cap is the largest bucket within ``tolerance`` of the best images per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence


def choose_batch_cap(rates: Mapping[int, float], tolerance: float) -> int:
    """The largest batch size whose images/s is at least ``(1 - tolerance)`` of the best one's."""
    if not rates:
        raise ValueError("no measured batch sizes")
    best = max(rates.values())
    return max(size for size, rate in rates.items() if rate >= (1.0 - tolerance) * best)


def measure_rates(
    run: Callable[[int], object], sizes: Sequence[int], min_time_s: float, min_runs: int = 2
) -> dict[int, float]:
    """Images per second at each batch size: the fastest of at least ``min_runs`` timed runs (already
    warmed up), running each size until ``min_time_s`` has passed. The fastest run is the one least
    disturbed by the rest of the machine, which is what a capability estimate wants."""
    rates: dict[int, float] = {}
    for size in sizes:
        best, spent, runs = float("inf"), 0.0, 0
        while runs < min_runs or spent < min_time_s:
            started = time.perf_counter()
            run(size)
            elapsed = time.perf_counter() - started
            best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
        rates[size] = size / best
    return rates
