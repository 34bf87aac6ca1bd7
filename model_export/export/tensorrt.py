"""Build and cache TensorRT engines for a bundle's graphs through ONNX Runtime's TensorRT provider.

The provider options match the service's (``service/engine.py``: one optimisation profile from batch 1
to the largest bucket, fp16 as asked), so engines built here are found in the cache by the server when it
runs with the same ``VIT_TRT_CACHE_DIR``, ``VIT_MAX_BATCH_SIZE`` and ``VIT_TRT_FP16``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_export.export.graphs import INPUT_NAME
from service.bundle import Manifest

TRT_PROVIDER = "TensorrtExecutionProvider"


class EngineBuildError(RuntimeError):
    """TensorRT is unavailable or refused a graph."""


@dataclass
class EngineReport:
    file: str
    seconds: float
    providers: list[str]


def batch_buckets(max_batch: int) -> list[int]:
    """Powers of two below ``max_batch``, then ``max_batch`` (the service's default buckets)."""
    buckets, size = [], 1
    while size < max_batch:
        buckets.append(size)
        size *= 2
    return [*buckets, max_batch]


def provider_options(
    input_size: tuple[int, int], cache_dir: Path, fp16: bool = False, max_batch: int = 16, min_batch: int = 1
) -> dict[str, str]:
    """ORT TensorRT options: engine + timing cache in ``cache_dir``, one profile min..max batch."""
    height, width = input_size

    def shape(n: int) -> str:
        return f"{INPUT_NAME}:{n}x{height}x{width}x3"

    return {
        "trt_fp16_enable": str(fp16),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": shape(min_batch),
        "trt_profile_opt_shapes": shape(max_batch),
        "trt_profile_max_shapes": shape(max_batch),
    }


def require_tensorrt() -> None:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if TRT_PROVIDER not in available:
        raise EngineBuildError(
            f"the TensorRT execution provider is not available in this onnxruntime build "
            f"(available: {available}); install onnxruntime-gpu with TensorRT on a CUDA host"
        )


def build_engines(
    bundle_dir: Path, cache_dir: Path, fp16: bool = False, max_batch: int = 16
) -> list[EngineReport]:
    """Build (or load from the cache) an engine for every fp32 graph, exercising each batch bucket."""
    import onnxruntime as ort

    require_tensorrt()
    manifest = Manifest.read(bundle_dir)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    options = provider_options(manifest.preprocessing.input_size, cache_dir, fp16, max_batch)
    reports = []
    for spec in manifest.graphs:
        if spec.variant != "fp32":
            continue  # TensorRT picks its own precisions from the fp32 graph (trt_fp16_enable)
        started = time.perf_counter()
        session = ort.InferenceSession(
            str(Path(bundle_dir) / spec.file),
            providers=[(TRT_PROVIDER, options), "CUDAExecutionProvider", "CPUExecutionProvider"],
        )
        if session.get_providers()[0] != TRT_PROVIDER:
            raise EngineBuildError(
                f"{spec.file}: TensorRT did not take the graph ({session.get_providers()})"
            )
        height, width = manifest.preprocessing.input_size
        for n in batch_buckets(max_batch):
            session.run(None, {INPUT_NAME: np.zeros((n, height, width, 3), dtype=np.uint8)})
        reports.append(EngineReport(spec.file, time.perf_counter() - started, session.get_providers()))
    return reports
