"""The dynamic batcher alone, with a plain Python predict function standing in for the engine."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.batcher import Batcher, DrainingError, QueueFullError, RequestTimeoutError
from service.metrics import ServiceMetrics

pytestmark = pytest.mark.anyio


class Recorder:
    """predict(): records each batch; can be held (blocked) to simulate a busy engine."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def __call__(self, payloads: list[int]) -> list[int]:
        self.batches.append(list(payloads))
        self.started.set()
        self.gate.wait(timeout=10)
        if any(p < 0 for p in payloads):
            raise ValueError("negative input")
        return [p * 10 for p in payloads]


def make(recorder: Recorder, **overrides) -> Batcher[int, int]:
    options = dict(max_batch_size=4, max_delay_s=0.05, max_queue=64, timeout_s=5.0)
    options.update(overrides)
    return Batcher("test", recorder, metrics=ServiceMetrics().for_batcher("test"), **options)


async def wait_for_thread_event(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 5)


async def test_idle_engine_runs_a_single_request_at_once():
    recorder = Recorder()
    batcher = make(recorder, max_delay_s=30.0)  # a fixed wait would time the test out
    batcher.start()
    assert await asyncio.wait_for(batcher.submit(3), timeout=2) == 30
    assert recorder.batches == [[3]]
    await batcher.stop()


async def test_busy_engine_gathers_arrivals_up_to_the_maximum():
    recorder = Recorder()
    batcher = make(recorder, max_batch_size=4)
    batcher.start()
    recorder.gate.clear()
    first = asyncio.create_task(batcher.submit(0))
    await wait_for_thread_event(recorder.started)
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 11)]
    await asyncio.sleep(0.05)
    assert batcher.depth == 10  # all waiting while the engine is busy
    recorder.gate.set()
    results = await asyncio.gather(first, *rest)
    assert results == [i * 10 for i in range(11)]
    sizes = [len(b) for b in recorder.batches]
    assert sizes[0] == 1
    assert max(sizes) == 4 and all(s <= 4 for s in sizes)
    assert sum(sizes) == 11
    assert [p for b in recorder.batches for p in b] == list(range(11))  # first come, first served
    await batcher.stop()


async def test_queue_bound_refuses_at_once_with_retry_after():
    recorder = Recorder()
    batcher = make(recorder, max_batch_size=1, max_queue=2)
    batcher.start()
    recorder.gate.clear()
    running = asyncio.create_task(batcher.submit(1))
    await wait_for_thread_event(recorder.started)
    queued = [asyncio.create_task(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFullError) as info:
        await batcher.submit(4)
    assert info.value.retry_after_s >= 1
    recorder.gate.set()
    assert await asyncio.gather(running, *queued) == [10, 20, 30]
    await batcher.stop()


async def test_timeout_raises_and_drops_the_queued_work():
    recorder = Recorder()
    batcher = make(recorder, max_batch_size=1, timeout_s=0.1)
    batcher.start()
    recorder.gate.clear()
    running = asyncio.create_task(batcher.submit(1))
    await wait_for_thread_event(recorder.started)
    with pytest.raises(RequestTimeoutError):
        await batcher.submit(2)
    assert batcher.depth == 0
    recorder.gate.set()
    with pytest.raises(RequestTimeoutError):
        await running  # it was in flight past its own deadline too
    assert await batcher.submit(5) == 50
    assert [2] not in recorder.batches  # the timed-out request never reached the engine
    await batcher.stop()


async def test_cancelled_request_is_dropped_before_it_runs():
    recorder = Recorder()
    batcher = make(recorder, max_batch_size=1)
    batcher.start()
    recorder.gate.clear()
    running = asyncio.create_task(batcher.submit(1))
    await wait_for_thread_event(recorder.started)
    doomed = asyncio.create_task(batcher.submit(2))
    kept = asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0.01)
    doomed.cancel()
    await asyncio.sleep(0.01)
    assert batcher.depth == 1
    recorder.gate.set()
    assert await running == 10 and await kept == 30
    assert doomed.cancelled()
    assert recorder.batches == [[1], [3]]
    await batcher.stop()


async def test_one_failing_item_does_not_fail_the_others():
    recorder = Recorder()
    batcher = make(recorder, max_batch_size=8)
    batcher.start()
    recorder.gate.clear()
    first = asyncio.create_task(batcher.submit(0))
    await wait_for_thread_event(recorder.started)
    tasks = [asyncio.create_task(batcher.submit(v)) for v in (1, -1, 2, 3)]
    await asyncio.sleep(0.01)
    recorder.gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert results[:2] == [0, 10] and results[3:] == [20, 30]
    assert isinstance(results[2], ValueError)
    assert [1, -1, 2, 3] in recorder.batches  # it was tried as one batch first
    await batcher.stop()


async def test_stop_finishes_queued_work_and_then_refuses():
    recorder = Recorder()
    batcher = make(recorder, max_batch_size=2)
    batcher.start()
    recorder.gate.clear()
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(5)]
    await wait_for_thread_event(recorder.started)
    stopping = asyncio.create_task(batcher.stop(timeout_s=5))
    await asyncio.sleep(0.01)
    with pytest.raises(DrainingError):
        await batcher.submit(9)
    recorder.gate.set()
    await stopping
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40]


async def test_metrics_record_batch_sizes_and_rejections():
    recorder = Recorder()
    metrics = ServiceMetrics()
    batcher = Batcher(
        "m",
        recorder,
        max_batch_size=4,
        max_delay_s=0.0,
        max_queue=3,
        timeout_s=5,
        metrics=metrics.for_batcher("m"),
    )
    batcher.start()
    recorder.gate.clear()
    first = asyncio.create_task(batcher.submit(1))
    await wait_for_thread_event(recorder.started)
    queued = [asyncio.create_task(batcher.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFullError):
        await batcher.submit(5)
    recorder.gate.set()
    await asyncio.gather(first, *queued)
    value = metrics.registry.get_sample_value
    assert value("vit_batch_size_count", {"batcher": "m"}) == 2
    assert value("vit_batch_size_sum", {"batcher": "m"}) == 4
    assert value("vit_rejected_requests_total", {"batcher": "m", "reason": "queue_full"}) == 1
    assert value("vit_queue_depth", {"batcher": "m"}) == 0
    await batcher.stop()
