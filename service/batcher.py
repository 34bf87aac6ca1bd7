"""The dynamic batcher: the stage between the routes and the engine.

Requests queue on the event loop; a single consumer hands batches to the engine, which runs in its
own worker thread. When the engine is idle a request runs at once (no fixed wait taxes light load).
While it is busy, arrivals gather, and the next batch takes up to ``max_batch_size`` of them;
``max_delay_s`` only caps how long a partial batch of such arrivals may wait for company.

Failure is per request: a full queue refuses at once (``QueueFullError``), a request that waits too
long gets ``RequestTimeoutError``, a cancelled request (client gone) is dropped from the queue, and
if a batch fails its items are retried one by one so that one bad input fails only itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from service.metrics import BatcherMetrics

log = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")


class BatcherError(Exception):
    """Base of the batcher's refusals; the HTTP layer maps each to a status."""


class QueueFullError(BatcherError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the request queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class DrainingError(BatcherError):
    def __init__(self) -> None:
        super().__init__("the service is shutting down and takes no new work")


class RequestTimeoutError(BatcherError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the request was not served within {timeout_s:g} s")
        self.timeout_s = timeout_s


@dataclass(eq=False)
class _Pending:
    payload: Any
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher(Generic[P, R]):
    """``await batcher.submit(payload)`` → ``predict([payload, ...])[i]`` for that payload."""

    def __init__(
        self,
        name: str,
        predict: Callable[[list[P]], Sequence[R]],
        *,
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        timeout_s: float,
        metrics: BatcherMetrics | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be positive")  # max_batch_size: set_max_batch_size checks
        self.name = name
        self.predict = predict
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.set_max_batch_size(max_batch_size)
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._busy = False
        self._last_finished = 0.0
        self._mean_batch_s = 0.0
        self._task: asyncio.Task[None] | None = None
        # One thread: the engine's session and its reusable input buffers are only touched here.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"engine-{name}")

    # -- public ----------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return self._busy

    def set_max_batch_size(self, size: int) -> None:
        """Change the cap (the service lowers it after measuring the engine); applies to the next batch."""
        if size < 1:
            raise ValueError("max_batch_size must be positive")
        self.max_batch_size = size
        if self.metrics is not None:
            self.metrics.max_batch_size.set(size)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def submit(self, payload: P) -> R:
        if self._closing:
            self._reject("draining")
            raise DrainingError()
        if len(self._queue) >= self.max_queue:
            self._reject("queue_full")
            raise QueueFullError(self.retry_after_s())
        item = _Pending(payload, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._set_depth()
        self._wakeup.set()
        try:
            return await asyncio.wait_for(item.future, self.timeout_s)
        except TimeoutError:
            self._reject("timeout")
            raise RequestTimeoutError(self.timeout_s) from None
        except asyncio.CancelledError:
            self._reject("cancelled")
            raise
        finally:
            # Cancelled or timed out before its batch was taken: drop the queued work.
            if not item.future.done() or item.future.cancelled():
                self._discard(item)

    def retry_after_s(self) -> int:
        """A rough time until the queue has room: the batches ahead times the mean batch time."""
        batches_ahead = math.ceil(len(self._queue) / self.max_batch_size) + 1
        return max(1, math.ceil(batches_ahead * self._mean_batch_s))

    async def stop(self, timeout_s: float | None = None) -> None:
        """Refuse new work, finish what is queued and in flight, then release the worker thread."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                log.warning("batcher %s: %d requests still queued at shutdown", self.name, len(self._queue))
                self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def run_sync(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``fn`` on the engine's thread (warm-up), so the engine is never used from two threads."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- the consumer ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = self._take(self.max_batch_size)
            if not batch:
                continue
            # Arrived while the engine was busy: may wait a little for company, never past the cap.
            if batch[0].enqueued < self._last_finished and len(batch) < self.max_batch_size:
                deadline = batch[0].enqueued + self.max_delay_s
                while len(batch) < self.max_batch_size and not self._closing:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                    except TimeoutError:
                        break
                    batch.extend(self._take(self.max_batch_size - len(batch)))
            await self._run(batch)

    def _take(self, limit: int) -> list[_Pending]:
        batch: list[_Pending] = []
        while self._queue and len(batch) < limit:
            item = self._queue.popleft()
            if not item.future.done():  # cancelled or timed out ones are skipped
                batch.append(item)
        self._set_depth()
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(batch))
            for item in batch:
                self.metrics.queue_wait.observe(started - item.enqueued)
        self._busy = True
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._predict_isolated, [item.payload for item in batch]
            )
        except BaseException as exc:  # the executor itself failed (e.g. shut down)
            results = [exc if isinstance(exc, Exception) else RuntimeError(str(exc))] * len(batch)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._busy = False
            self._last_finished = time.perf_counter()
            elapsed = self._last_finished - started
            self._mean_batch_s = (
                elapsed if not self._mean_batch_s else 0.8 * self._mean_batch_s + 0.2 * elapsed
            )
            if self.metrics is not None:
                self.metrics.inference.observe(elapsed)
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue  # its request gave up meanwhile
            if isinstance(result, Exception):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _predict_isolated(self, payloads: list[P]) -> list[R | Exception]:
        """The whole batch at once; if that fails, each item alone, so one bad item fails only itself."""
        try:
            results = list(self.predict(payloads))
            if len(results) != len(payloads):
                raise RuntimeError(f"predict returned {len(results)} results for {len(payloads)} inputs")
            return results  # type: ignore[return-value]
        except Exception as exc:
            if len(payloads) == 1:
                return [exc]
            log.warning(
                "batcher %s: batch of %d failed (%r); retrying one by one", self.name, len(payloads), exc
            )
        single: list[R | Exception] = []
        for payload in payloads:
            try:
                single.append(self.predict([payload])[0])
            except Exception as exc:
                single.append(exc)
        return single

    # -- bookkeeping -----------------------------------------------------------------------------

    def _discard(self, item: _Pending) -> None:
        try:
            self._queue.remove(item)
        except ValueError:
            return
        self._set_depth()

    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._queue))

    def _reject(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.reject(reason)
