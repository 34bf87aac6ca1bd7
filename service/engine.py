"""One ONNX Runtime session per graph, fed batches from preallocated buffers.

On accelerators, batches are padded up to the next bucket size so that TensorRT profiles and CUDA
kernels only ever see a handful of shapes, all warmed up before the service reports ready. On the
CPU provider padded rows would be computed for nothing (a batch of 9 would cost 16), so by default
the exact batch runs there, as a view of the same buffer. ``run`` is called from a single dedicated
thread per engine (see the batcher), so the buffers are reused without locks and nothing is copied twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.bundle.loader import INPUT_NAME
from service.bundle.manifest import BundleError, GraphSpec

log = logging.getLogger(__name__)

AUTO_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
ORT_TYPES = {"uint8": "tensor(uint8)", "float32": "tensor(float)", "float16": "tensor(float16)"}


@dataclass(frozen=True)
class EngineOptions:
    providers: Sequence[str] = ()  # empty: the best available of AUTO_PROVIDERS
    buckets: Sequence[int] = (1,)
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    trt_cache_dir: Path | None = None
    trt_fp16: bool = True
    gpu_mem_limit_mb: int = 0
    pad_batches: str = "auto"  # "auto": only on accelerators; "always"; "never"
    spinning: bool = True  # ORT worker threads busy-wait between operators (ORT's default)
    extra: dict[str, dict[str, str]] = field(default_factory=dict)


def choose_providers(requested: Sequence[str]) -> list[str]:
    """Requested providers that this onnxruntime build has, in order; CPU is always the last resort."""
    available = ort.get_available_providers()
    wanted = list(requested) or list(AUTO_PROVIDERS)
    missing = [p for p in requested if p not in available]
    if missing:
        log.warning("providers %s are not available in this onnxruntime build (%s)", missing, available)
    chosen = [p for p in wanted if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def provider_options(name: str, options: EngineOptions, input_shape: tuple[int, int]) -> dict[str, str]:
    height, width = input_shape

    def shape(n: int) -> str:
        return f"{INPUT_NAME}:{n}x{height}x{width}x3"

    if name == "TensorrtExecutionProvider":
        buckets = sorted(options.buckets)
        opts = {
            "trt_fp16_enable": str(options.trt_fp16),
            "trt_profile_min_shapes": shape(buckets[0]),
            "trt_profile_opt_shapes": shape(buckets[-1]),
            "trt_profile_max_shapes": shape(buckets[-1]),
        }
        if options.trt_cache_dir is not None:
            Path(options.trt_cache_dir).mkdir(parents=True, exist_ok=True)
            opts.update(trt_engine_cache_enable="True", trt_engine_cache_path=str(options.trt_cache_dir))
            opts.update(trt_timing_cache_enable="True", trt_timing_cache_path=str(options.trt_cache_dir))
        return opts
    if name == "CUDAExecutionProvider":
        opts = {"arena_extend_strategy": "kSameAsRequested"}
        if options.gpu_mem_limit_mb:
            opts["gpu_mem_limit"] = str(options.gpu_mem_limit_mb * 1024 * 1024)
        return opts
    return dict(options.extra.get(name, {}))


class Engine:
    """Runs one graph of a bundle; ``run`` takes a list of [H, W, 3] uint8 images."""

    def __init__(self, path: Path, spec: GraphSpec, input_shape: tuple[int, int], options: EngineOptions):
        self.spec = spec
        self.input_shape = tuple(input_shape)
        self.buckets = sorted(set(options.buckets))
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.intra_op_threads
        session_options.inter_op_num_threads = options.inter_op_threads
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not options.spinning:
            # On a shared or oversubscribed host a descheduled peer leaves the others spinning; on a
            # dedicated one spinning is faster (ViT-S/16, 2 cores: 29.6 vs 21.5 img/s at batch 1).
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session_options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        chosen = choose_providers(options.providers)
        providers = [(name, provider_options(name, options, self.input_shape)) for name in chosen]
        try:
            self.session = ort.InferenceSession(str(path), session_options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"cannot load graph {spec.file}: {exc}") from exc
        self.providers: list[str] = self.session.get_providers()
        if options.pad_batches not in ("auto", "always", "never"):
            raise ValueError(f"pad_batches must be auto, always or never, not {options.pad_batches!r}")
        on_cpu = self.providers[0] == "CPUExecutionProvider"
        self.pads = options.pad_batches == "always" or (options.pad_batches == "auto" and not on_cpu)
        self._check_session()
        self.output_names = [t.name for t in spec.outputs]
        height, width = self.input_shape
        self._buffers = {n: np.zeros((n, height, width, 3), dtype=np.uint8) for n in self.buckets}

    def _check_session(self) -> None:
        """The real graph's signature agrees with the manifest (a swapped or foreign graph is refused)."""
        inputs = self.session.get_inputs()
        height, width = self.input_shape
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or inputs[0].type != "tensor(uint8)":
            found = [(i.name, i.type) for i in inputs]
            raise BundleError(f"graph {self.spec.file}: expected one uint8 input {INPUT_NAME!r}, got {found}")
        if [d for d in inputs[0].shape[1:]] != [height, width, 3]:
            raise BundleError(
                f"graph {self.spec.file}: input shape {inputs[0].shape} is not [N, {height}, {width}, 3]"
            )
        actual = {o.name: o for o in self.session.get_outputs()}
        for tensor in self.spec.outputs:
            node = actual.get(tensor.name)
            if node is None:
                raise BundleError(f"graph {self.spec.file}: has no output {tensor.name!r} ({sorted(actual)})")
            expected_type = ORT_TYPES.get(tensor.dtype)
            if expected_type and node.type != expected_type:
                raise BundleError(
                    f"graph {self.spec.file}: output {tensor.name} is {node.type}, "
                    f"manifest says {tensor.dtype}"
                )
            static = [
                (a, b) for a, b in zip(node.shape[1:], tensor.shape[1:], strict=False) if isinstance(a, int)
            ]
            if len(node.shape) != len(tensor.shape) or any(a != b for a, b in static):
                raise BundleError(
                    f"graph {self.spec.file}: output {tensor.name} has shape {node.shape}, "
                    f"manifest says {list(tensor.shape)}"
                )

    @property
    def max_batch(self) -> int:
        return self.buckets[-1]

    def bucket_for(self, n: int) -> int:
        for size in self.buckets:
            if size >= n:
                return size
        raise ValueError(f"batch of {n} exceeds the largest bucket {self.buckets[-1]}")

    def run_size(self, n: int) -> int:
        """The batch size the graph actually runs for ``n`` images: the bucket, or ``n`` unpadded."""
        bucket = self.bucket_for(n)
        return bucket if self.pads else n

    def run(self, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Stack ``images`` into the buffer, run, return float32 outputs sliced to the batch."""
        count = len(images)
        if count == 0:
            return {name: np.empty((0,)) for name in self.output_names}
        bucket = self.bucket_for(count)
        # The leading rows of a C-contiguous buffer are a contiguous view: no copy either way.
        buffer = self._buffers[bucket] if self.pads else self._buffers[bucket][:count]
        for row, image in enumerate(images):
            buffer[row] = image
        outputs = self.session.run(self.output_names, {INPUT_NAME: buffer})
        return {
            name: np.asarray(value[:count], dtype=np.float32)
            for name, value in zip(self.output_names, outputs, strict=True)
        }

    def run_bucket(self, size: int) -> None:
        """One run of a bucket's buffer as it stands (for warm-up and timing)."""
        self.session.run(self.output_names, {INPUT_NAME: self._buffers[size]})

    def warmup(self) -> None:
        """One run per bucket, so no request pays for kernel selection or engine building."""
        for size in self.buckets:
            self.run_bucket(size)
