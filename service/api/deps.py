"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Query, Request

from service.api.errors import ApiError
from service.core.config import Settings
from service.inference import InferenceService


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_service(request: Request) -> InferenceService:
    """The loaded, warmed service; 503 while loading or draining."""
    state = request.app.state
    if getattr(state, "draining", False):
        raise ApiError(503, "draining", "the service is shutting down")
    service = getattr(state, "service", None)
    if service is None or not getattr(state, "ready", False):
        raise ApiError(503, "not_ready", "the model is still loading")
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[InferenceService, Depends(get_service)]
TopK = Annotated[int, Query(ge=1, description="how many classes to return (at most the number of classes)")]


def require_api_key(request: Request) -> None:
    """When VIT_API_KEY is set, requests carry it as ``X-API-Key`` or ``Authorization: Bearer``."""
    settings: Settings | None = getattr(request.app.state, "settings", None)
    if settings is None or settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    offered = request.headers.get("x-api-key")
    if offered is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        offered = token.strip() if scheme.lower() == "bearer" else None
    if offered is None or not secrets.compare_digest(offered.encode(), expected):
        raise ApiError(401, "unauthorized", "missing or wrong API key", {"WWW-Authenticate": "Bearer"})


def check_top_k(top_k: int, service: InferenceService) -> None:
    if top_k > len(service.labels):
        raise ApiError(422, "invalid_parameters", f"top_k must be between 1 and {len(service.labels)}")
