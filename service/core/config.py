"""All service settings, read once from ``VIT_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def _split(value: object) -> object:
    """Comma-separated env values (``VIT_PROVIDERS=cuda,cpu``) as lists; JSON lists also accepted."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service. Defaults suit a small CPU host; see docs/service.md."""

    model_config = SettingsConfigDict(env_prefix="VIT_", extra="ignore", validate_default=True)

    bundle: Path = Field(Path("bundles/default"), description="bundle directory or .tar")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    variant: Literal["fp32", "fp16", "int8"] = "fp32"

    # Batching: MAX_BATCH_DELAY_MS only caps how long a partial batch waits while the engine is busy.
    max_batch_size: int = Field(16, ge=1, le=1024)
    max_batch_delay_ms: float = Field(5.0, ge=0, le=10_000)
    max_queue: int = Field(256, ge=1)
    request_timeout_s: float = Field(30.0, gt=0)
    batch_autotune: bool = Field(
        True, description="after warm-up, cap batches where larger ones stop paying (measured per bucket)"
    )
    batch_autotune_tolerance: float = Field(
        0.05, ge=0, lt=1, description="the cap: the smallest bucket within this fraction of the best img/s"
    )
    batch_buckets: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="batch sizes the engine pads to; default powers of two"
    )

    # Inputs.
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(40_000_000, ge=1)
    max_batch_files: int = Field(32, ge=1)
    max_batch_upload_bytes: int = Field(64 * 1024 * 1024, ge=1, description="a whole /classify/batch body")
    decode_workers: int = Field(default_factory=lambda: max(2, os.cpu_count() or 1), ge=1)

    # ONNX Runtime.
    providers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="execution providers in order; default TensorRT, CUDA, CPU"
    )
    intra_op_threads: int = Field(0, ge=0, description="0: ONNX Runtime's default (all cores)")
    inter_op_threads: int = Field(1, ge=0)
    pad_batches: Literal["auto", "always", "never"] = Field(
        "auto", description="pad batches to the buckets: auto = only on GPU providers"
    )
    ort_spinning: bool = Field(
        True, description="ONNX Runtime threads busy-wait between operators; turn off on shared CPUs"
    )
    trt_cache_dir: Path | None = None
    trt_fp16: bool = True
    gpu_mem_limit_mb: int = Field(0, ge=0, description="0: no limit on the CUDA arena")
    warmup: bool = True

    # Explanations.
    explain_cache_size: int = Field(256, ge=1)
    explain_ttl_s: float = Field(600.0, gt=0)

    api_key: SecretStr | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    graceful_timeout_s: int = Field(30, ge=1)

    @field_validator("batch_buckets", "providers", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: list[str]) -> list[str]:
        return [PROVIDER_ALIASES.get(name.lower(), name) for name in value]

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _buckets(self) -> Settings:
        if not self.batch_buckets:
            buckets, size = [], 1
            while size < self.max_batch_size:
                buckets.append(size)
                size *= 2
            self.batch_buckets = [*buckets, self.max_batch_size]
        else:
            if min(self.batch_buckets) < 1:
                raise ValueError("batch buckets must be positive")
            if max(self.batch_buckets) < self.max_batch_size:
                raise ValueError(
                    f"the largest batch bucket {max(self.batch_buckets)} is below "
                    f"max_batch_size {self.max_batch_size}"
                )
            self.batch_buckets = sorted(set(self.batch_buckets))
        return self
