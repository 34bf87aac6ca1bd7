"""Choose the batcher's batch cap from the engine's own measured speed at each bucket.

A larger batch is not always faster: on a 2-core CPU ViT-S/16 ran at 32 img/s at batch 2 to 8 and at 28
at batch 16 (the activations stop fitting in cache), while on a GPU throughput keeps growing with the
batch. A batch larger than it needs to be only adds latency (every member waits for the whole batch),
and under load on the CPU it also cost throughput (caps of 2, 4 and 8 served 26.9, 26.5 and 25.0 req/s
at 64 clients). So after warm-up the service times each bucket and caps batches at the smallest bucket
within ``tolerance`` of the best images per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence


def choose_batch_cap(rates: Mapping[int, float], tolerance: float) -> int:
    """The smallest batch size whose images/s is at least ``(1 - tolerance)`` of the best one's."""
    if not rates:
        raise ValueError("no measured batch sizes")
    best = max(rates.values())
    return min(size for size, rate in rates.items() if rate >= (1.0 - tolerance) * best)


def measure_rates(run: Callable[[int], object], sizes: Sequence[int], rounds: int = 3) -> dict[int, float]:
    """Images per second at each batch size (already warmed up), from the fastest of ``rounds`` runs.

    Sizes are timed in rounds (1, 2, 4, … then again) rather than one after another, so a burst of
    background load hits every size alike; the fastest run is the one least disturbed by the rest of
    the machine, which is what an estimate of the engine's capability wants."""
    fastest = dict.fromkeys(sizes, float("inf"))
    for _ in range(rounds):
        for size in sizes:
            started = time.perf_counter()
            run(size)
            fastest[size] = min(fastest[size], time.perf_counter() - started)
    return {size: size / seconds for size, seconds in fastest.items()}
