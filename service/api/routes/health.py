"""Liveness and readiness, for load balancers and orchestrators (never behind the API key)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api.errors import error_response
from service.api.schemas import ErrorResponse, HealthResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, summary="The process is alive")
async def healthz() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get(
    "/readyz",
    response_model=HealthResponse,
    responses={503: {"model": ErrorResponse, "description": "loading, failed to load, or draining"}},
    summary="The bundle is loaded and warmed up, and the service is not draining",
)
async def readyz(request: Request) -> HealthResponse | JSONResponse:
    state = request.app.state
    if getattr(state, "draining", False):
        return error_response(503, "draining", "the service is shutting down")
    if getattr(state, "load_error", None):
        return error_response(503, "load_failed", str(state.load_error))
    if not getattr(state, "ready", False):
        return error_response(503, "not_ready", "the model is still loading")
    return HealthResponse(status="ready")
