"""Prometheus metrics: HTTP metrics from prometheus-fastapi-instrumentator plus the batcher's own.

Every app gets its own registry, so several apps (tests, or one per process) never collide.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_fastapi_instrumentator import Instrumentator

BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class BatcherMetrics:
    """The instruments one batcher reports to, already bound to its name."""

    queue_depth: Gauge
    batch_size: Histogram
    queue_wait: Histogram
    inference: Histogram
    rejected: Counter  # labelled by batcher and reason
    max_batch_size: Gauge
    name: str

    def reject(self, reason: str) -> None:
        self.rejected.labels(batcher=self.name, reason=reason).inc()


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._queue_depth = Gauge("vit_queue_depth", "Requests waiting for a batch", ["batcher"], registry=r)
        self._batch_size = Histogram(
            "vit_batch_size", "Images per engine run", ["batcher"], buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self._queue_wait = Histogram(
            "vit_queue_wait_seconds", "Time from enqueue to engine start", ["batcher"],
            buckets=TIME_BUCKETS, registry=r,
        )  # fmt: skip
        self._inference = Histogram(
            "vit_inference_seconds", "Engine time per batch", ["batcher"], buckets=TIME_BUCKETS, registry=r
        )
        self.rejected = Counter(
            "vit_rejected_requests", "Requests refused or abandoned", ["batcher", "reason"], registry=r
        )
        self._max_batch_size = Gauge(
            "vit_max_batch_size", "The batch cap in force (measured at start-up or configured)", ["batcher"],
            registry=r,
        )  # fmt: skip
        self.model_info = Info("vit_model", "The bundle being served", registry=r)

    def for_batcher(self, name: str) -> BatcherMetrics:
        return BatcherMetrics(
            queue_depth=self._queue_depth.labels(batcher=name),
            batch_size=self._batch_size.labels(batcher=name),
            queue_wait=self._queue_wait.labels(batcher=name),
            inference=self._inference.labels(batcher=name),
            rejected=self.rejected,
            max_batch_size=self._max_batch_size.labels(batcher=name),
            name=name,
        )

    def instrument(self, app: FastAPI) -> None:
        """Request counts and latency by route and exact status, exposed at /metrics."""
        Instrumentator(
            should_group_status_codes=False,
            excluded_handlers=["/metrics"],
            registry=self.registry,
        ).instrument(app).expose(app, endpoint="/metrics", include_in_schema=False)
