"""Attention-rollout explanations: fetched by id after ``/classify?explain=true``, or one-shot."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from service.api.deps import ServiceDep, SettingsDep
from service.api.disconnect import unless_disconnected
from service.api.errors import ApiError
from service.api.routes.classify import image_body
from service.api.schemas import ERROR_RESPONSES, ErrorResponse, ExplanationResponse
from service.api.uploads import read_one_image
from service.explanations import Explanation
from service.inference import ExplainUnavailableError, InferenceService

router = APIRouter(tags=["explain"])

Format = Annotated[Literal["json", "png"], Query(description="`png`: the heatmap over the image")]
PNG_RESPONSE = {200: {"content": {"image/png": {}}, "description": "JSON rollout, or a PNG heatmap"}}


async def render(service: InferenceService, entry: Explanation, fmt: str) -> ExplanationResponse | Response:
    if fmt == "png":
        return Response(await service.heatmap_png(entry), media_type="image/png")
    return ExplanationResponse(
        id=entry.id,
        grid=list(entry.rollout.shape),
        map=entry.rollout.astype(float).tolist(),
        label=entry.label,
        index=entry.index,
    )


@router.get(
    "/explain/{explanation_id}",
    name="get_explanation",
    response_model=ExplanationResponse,
    responses={
        **ERROR_RESPONSES,
        **PNG_RESPONSE,
        404: {"model": ErrorResponse, "description": "unknown or expired"},
    },
    summary="The rollout for an earlier /classify?explain=true",
)
async def get_explanation(
    service: ServiceDep,
    explanation_id: Annotated[str, Path(max_length=64)],
    format: Format = "json",
) -> ExplanationResponse | Response:
    entry = service.explanations.get(explanation_id)
    if entry is None:
        raise ApiError(
            404, "explanation_not_found", f"no explanation {explanation_id!r} (unknown or expired)"
        )
    return await render(service, entry, format)


@router.post(
    "/explain",
    response_model=ExplanationResponse,
    responses={**ERROR_RESPONSES, **PNG_RESPONSE},
    openapi_extra=image_body("file"),
    summary="One-shot: image in, attention rollout out",
)
async def explain(
    request: Request, service: ServiceDep, settings: SettingsDep, format: Format = "json"
) -> ExplanationResponse | Response:
    data = await read_one_image(request, "file", settings.max_upload_bytes)
    try:
        entry, _ = await unless_disconnected(request, service.explain(data))
    except ExplainUnavailableError as exc:
        raise ApiError(404, "explain_unavailable", str(exc)) from None
    return await render(service, entry, format)
