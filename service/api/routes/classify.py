"""``POST /classify`` and ``POST /classify/batch``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request

from service.api.deps import ServiceDep, SettingsDep, TopK, check_top_k
from service.api.disconnect import unless_disconnected
from service.api.errors import ApiError, as_api_error
from service.api.schemas import (
    ERROR_RESPONSES,
    BatchEntry,
    BatchResponse,
    ClassifyResponse,
    ErrorDetail,
    ExplanationRef,
    Prediction,
)
from service.api.uploads import Upload, read_images, read_one_image
from service.inference import ClassifyResult, ExplainUnavailableError

log = logging.getLogger(__name__)

router = APIRouter(tags=["classify"])


def image_body(field: str, many: bool = False) -> dict[str, Any]:
    """OpenAPI for a body the route parses itself: multipart ``field`` or (single image) raw image/*."""
    binary = {"type": "string", "format": "binary"}
    files = {"type": "array", "items": binary} if many else binary
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {field: files}, "required": [field]},
        }
    }
    if not many:
        content["image/*"] = {"schema": binary}
    return {"requestBody": {"required": True, "content": content}}


def explanation_ref(request: Request, result: ClassifyResult) -> ExplanationRef | None:
    if result.explanation is None:
        return None
    entry_id = result.explanation.id
    return ExplanationRef(
        id=entry_id, url=request.app.url_path_for("get_explanation", explanation_id=entry_id)
    )


def predictions(result: ClassifyResult) -> list[Prediction]:
    return [Prediction(label=p.label, index=p.index, score=p.score) for p in result.predictions]


async def classify_one(service: ServiceDep, data: bytes, top_k: int, explain: bool) -> ClassifyResult:
    try:
        return await service.classify(data, top_k, explain)
    except ExplainUnavailableError as exc:
        raise ApiError(404, "explain_unavailable", str(exc)) from None


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    openapi_extra=image_body("file"),
    summary="Classify one image (multipart field `file`, or a raw image/* body)",
)
async def classify(
    request: Request, service: ServiceDep, settings: SettingsDep, top_k: TopK = 5, explain: bool = False
) -> ClassifyResponse:
    check_top_k(top_k, service)
    data = await read_one_image(request, "file", settings.max_upload_bytes)
    result = await unless_disconnected(request, classify_one(service, data, top_k, explain))
    manifest = service.bundle.manifest
    return ClassifyResponse(
        model=manifest.name,
        version=manifest.version,
        predictions=predictions(result),
        explanation=explanation_ref(request, result),
    )


@router.post(
    "/classify/batch",
    response_model=BatchResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    openapi_extra=image_body("files", many=True),
    summary="Classify several images (multipart field `files`); one result each, in order",
)
async def classify_batch(
    request: Request, service: ServiceDep, settings: SettingsDep, top_k: TopK = 5, explain: bool = False
) -> BatchResponse:
    check_top_k(top_k, service)
    uploads = await read_images(
        request,
        field="files",
        per_file_limit=settings.max_upload_bytes,
        total_limit=settings.max_batch_upload_bytes,
        max_files=settings.max_batch_files,
    )

    def failed(upload: Upload, error: ApiError) -> BatchEntry:
        detail = ErrorDetail(code=error.code, message=error.message)
        return BatchEntry(filename=upload.filename, status=error.status, error=detail)

    async def one(upload: Upload) -> BatchEntry:
        if upload.error is not None:
            return failed(upload, upload.error)
        try:
            result = await classify_one(service, upload.data, top_k, explain)
        except Exception as exc:
            error = as_api_error(exc)
            if error is None:
                log.exception("batch entry %r failed", upload.filename)
                error = ApiError(500, "internal_error", "internal server error")
            return failed(upload, error)
        return BatchEntry(
            filename=upload.filename,
            status=200,
            predictions=predictions(result),
            explanation=explanation_ref(request, result),
        )

    entries = await unless_disconnected(request, asyncio.gather(*(one(u) for u in uploads)))
    manifest = service.bundle.manifest
    return BatchResponse(model=manifest.name, version=manifest.version, results=list(entries))
