"""The request path as named stages: decode → batch → predict → unbatch → encode.

``InferenceService`` owns the engines, their batchers, the decode thread pool and the explanation
cache; each stage is a small method that can be tested alone. Routes only translate HTTP to these.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from service.batch_tuning import choose_batch_cap, measure_rates
from service.batcher import Batcher
from service.bundle.loader import LoadedBundle
from service.core.config import Settings
from service.engine import Engine, EngineOptions
from service.explanations import Explanation, ExplanationCache
from service.imaging import load_for_model, render_heatmap_png
from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

AUTOTUNE_ROUNDS = 3  # timed runs per bucket at start-up (the fastest counts)


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    score: float


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # [H, W, 3] uint8, what the graph takes


@dataclass(frozen=True)
class ClassifyResult:
    predictions: list[Prediction]
    explanation: Explanation | None = None


class ExplainUnavailableError(Exception):
    """The bundle has no explain graph."""


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


class InferenceService:
    def __init__(self, bundle: LoadedBundle, settings: Settings, metrics: ServiceMetrics) -> None:
        self.bundle = bundle
        self.settings = settings
        self.labels = bundle.labels
        self.preprocessing = bundle.manifest.preprocessing
        options = EngineOptions(
            providers=settings.providers,
            buckets=settings.batch_buckets,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            trt_cache_dir=settings.trt_cache_dir,
            trt_fp16=settings.trt_fp16,
            gpu_mem_limit_mb=settings.gpu_mem_limit_mb,
            pad_batches=settings.pad_batches,
            spinning=settings.ort_spinning,
        )
        size = self.preprocessing.input_size
        self.classify_engine = Engine(bundle.graph_path(bundle.classify), bundle.classify, size, options)
        self.explain_engine = (
            Engine(bundle.graph_path(bundle.explain), bundle.explain, size, options)
            if bundle.explain
            else None
        )
        common = dict(
            max_batch_size=settings.max_batch_size,
            max_delay_s=settings.max_batch_delay_ms / 1000,
            max_queue=settings.max_queue,
            timeout_s=settings.request_timeout_s,
        )
        self.classify_batcher: Batcher[np.ndarray, np.ndarray] = Batcher(
            "classify", self.predict_classify, metrics=metrics.for_batcher("classify"), **common
        )
        self.explain_batcher: Batcher[np.ndarray, tuple[np.ndarray, np.ndarray]] = Batcher(
            "explain", self.predict_explain, metrics=metrics.for_batcher("explain"), **common
        )
        self.engine_rates: dict[int, float] = {}  # measured at start-up when autotuning
        self.decoder = ThreadPoolExecutor(settings.decode_workers, thread_name_prefix="decode")
        self.explanations = ExplanationCache(settings.explain_cache_size, settings.explain_ttl_s)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def providers(self) -> list[str]:
        return self.classify_engine.providers

    async def start(self) -> None:
        """Start the batchers and warm every bucket up on the engines' own threads."""
        self.classify_batcher.start()
        self.explain_batcher.start()
        if self.settings.warmup:
            await self.classify_batcher.run_sync(self.classify_engine.warmup)
            if self.explain_engine is not None:
                await self.explain_batcher.run_sync(self.explain_engine.warmup)
            if self.settings.batch_autotune and len(self.classify_engine.buckets) > 1:
                await self.tune_batch_cap()

    async def tune_batch_cap(self) -> None:
        """Time the classify graph at every bucket and cap both batchers where larger batches stop paying
        (see ``service.batch_tuning``; the explain graph is the classify graph plus the rollout, so it
        shares the cap)."""
        engine = self.classify_engine
        rates = await self.classify_batcher.run_sync(
            lambda: measure_rates(engine.run_bucket, engine.buckets, rounds=AUTOTUNE_ROUNDS)
        )
        cap = choose_batch_cap(rates, self.settings.batch_autotune_tolerance)
        self.engine_rates = rates
        for batcher in (self.classify_batcher, self.explain_batcher):
            batcher.set_max_batch_size(cap)
        shown = ", ".join(f"{size}: {rate:.1f}" for size, rate in rates.items())
        log.info("engine images/s by batch size {%s}: batches capped at %d", shown, cap)

    async def stop(self, timeout_s: float) -> None:
        await asyncio.gather(self.classify_batcher.stop(timeout_s), self.explain_batcher.stop(timeout_s))
        self.decoder.shutdown(wait=False, cancel_futures=True)

    # -- stages -----------------------------------------------------------------------------------

    async def decode(self, data: bytes) -> Decoded:
        """Bytes → model input, in the decode pool (never on the event loop nor the engine thread)."""

        def work() -> Decoded:
            pixels, _ = load_for_model(data, self.preprocessing, max_pixels=self.settings.max_image_pixels)
            return Decoded(pixels)

        return await asyncio.get_running_loop().run_in_executor(self.decoder, work)

    def predict_classify(self, images: list[np.ndarray]) -> list[np.ndarray]:
        logits = self.classify_engine.run(images)["logits"]
        return list(logits)  # unbatch: one row view per request

    def predict_explain(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        assert self.explain_engine is not None
        outputs = self.explain_engine.run(images)
        return list(zip(outputs["logits"], outputs["rollout"], strict=True))

    def top_k(self, logits: np.ndarray, k: int) -> list[Prediction]:
        probs = softmax(logits)
        order = np.argsort(-probs, kind="stable")[:k]
        return [Prediction(self.labels[i], int(i), float(probs[i])) for i in order]

    # -- whole requests ---------------------------------------------------------------------------

    async def classify(self, data: bytes, top_k: int, explain: bool = False) -> ClassifyResult:
        if explain:
            entry, logits = await self.explain(data)
            return ClassifyResult(self.top_k(logits, top_k), entry)
        decoded = await self.decode(data)
        logits = await self.classify_batcher.submit(decoded.pixels)
        return ClassifyResult(self.top_k(logits, top_k))

    async def explain(self, data: bytes) -> tuple[Explanation, np.ndarray]:
        """Run the explain graph; the rollout is stored so that it can be fetched again by id."""
        if self.explain_engine is None:
            raise ExplainUnavailableError("this bundle has no explain graph")
        decoded = await self.decode(data)
        logits, rollout = await self.explain_batcher.submit(decoded.pixels)
        index = int(np.argmax(logits))
        entry = self.explanations.put(np.array(rollout), self.labels[index], index, decoded.pixels)
        return entry, logits

    async def heatmap_png(self, entry: Explanation) -> bytes:
        # The stored pixels are already the model's view; an exact resize to the same size is the identity.
        as_is = dataclasses.replace(self.preprocessing, resize="exact", resize_size=None)

        def work() -> bytes:
            return render_heatmap_png(Image.fromarray(entry.pixels), entry.rollout, as_is)

        return await asyncio.get_running_loop().run_in_executor(self.decoder, work)
