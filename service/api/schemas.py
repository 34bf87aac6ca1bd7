"""Response models: declared so that /docs documents the API exactly as it answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_image"])
    message: str = Field(examples=["cannot identify image file"])


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Prediction(BaseModel):
    label: str = Field(examples=["tabby cat"])
    index: int = Field(examples=[281])
    score: float = Field(description="softmax probability", examples=[0.83])


class ExplanationRef(BaseModel):
    id: str = Field(examples=["q2xXzS1y0bYcA6Lk"])
    url: str = Field(examples=["/explain/q2xXzS1y0bYcA6Lk"])


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str = Field(examples=["digits-vit"])
    version: str = Field(examples=["1"])
    predictions: list[Prediction]
    explanation: ExplanationRef | None = None


class BatchEntry(BaseModel):
    filename: str | None = None
    status: int = Field(description="the HTTP status this image alone would have had", examples=[200])
    predictions: list[Prediction] | None = None
    explanation: ExplanationRef | None = None
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    version: str
    results: list[BatchEntry]


class ExplanationResponse(BaseModel):
    id: str | None = None
    grid: list[int] = Field(description="[h, w] patch grid", examples=[[14, 14]])
    map: list[list[float]] = Field(description="[CLS] row of the rollout over the patch grid, unscaled")
    label: str = Field(description="the top-1 class the map explains")
    index: int
    method: Literal["attention_rollout"] = "attention_rollout"


class HealthResponse(BaseModel):
    status: str = Field(examples=["ok"])


class ModelResponse(BaseModel):
    name: str
    version: str
    created: str
    architecture: dict[str, Any]
    labels: list[str]
    num_classes: int
    input_size: list[int] = Field(examples=[[224, 224]])
    preprocessing: dict[str, Any]
    providers: list[str] = Field(description="ONNX Runtime execution providers actually in use")
    variant: str = Field(examples=["fp32"])
    accuracy: dict[str, float] = Field(description="the served graph's recorded accuracy and change vs fp32")
    bundle_digest: str = Field(description="sha256 of manifest.json")
    explain: bool = Field(description="whether the bundle has an explain graph")
    max_batch_size: int = Field(
        description="the batch cap in force: VIT_MAX_BATCH_SIZE, or lower where start-up timing found "
        "that larger batches do not pay"
    )
    batch_buckets: list[int]
    engine_images_per_second: dict[str, float] = Field(
        description="the classify graph's measured speed at each bucket (empty without autotuning)"
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "invalid or undecodable image",
        401: "missing or wrong API key",
        413: "upload too large (bytes or pixels)",
        415: "unsupported media type",
        422: "invalid parameters",
        429: "queue full; see Retry-After",
        503: "not ready or draining",
        504: "request timed out",
    }.items()
}
