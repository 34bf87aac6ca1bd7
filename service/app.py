"""Assemble the FastAPI app: middleware, routes, error handlers, metrics and the lifespan.

``create_app(settings)`` builds an app; the module-level ``app`` reads its settings from the
environment only when it starts, so ``uvicorn service.app:app`` works with ``VIT_*`` variables.
The bundle loads and warms up in the background: /healthz answers at once, /readyz says 503 until
the engines are warm, and again from the moment SIGTERM arrives (queued work still finishes).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.datastructures import State

from service.api.deps import require_api_key
from service.api.errors import install_error_handlers
from service.api.middleware import DrainingMiddleware, RequestIdMiddleware
from service.api.routes import classify, explain, health, model
from service.bundle.loader import LoadedBundle, load_bundle
from service.core.config import Settings
from service.core.logging import configure_logging
from service.inference import InferenceService
from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


def _install_drain_hook(state: State) -> Callable[[], None]:
    """Wrap the server's SIGTERM/SIGINT handlers so that draining starts the instant a signal arrives."""
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        if not state.draining:
            log.info("signal %d: draining; queued and in-flight requests will finish", signum)
        state.draining = True
        handler = previous.get(signum)
        if callable(handler):
            handler(signum, frame)

    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    except ValueError:  # not the main thread (e.g. an in-process test client): nothing to hook
        return lambda: None

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


async def _load(
    app: FastAPI, settings: Settings, bundle: LoadedBundle | None, metrics: ServiceMetrics
) -> None:
    state = app.state
    try:
        loaded = bundle or await asyncio.to_thread(load_bundle, settings.bundle, settings.variant)
        service = await asyncio.to_thread(InferenceService, loaded, settings, metrics)
        state.service = service
        await service.start()
        metrics.model_info.info(
            {
                "name": loaded.manifest.name,
                "version": loaded.manifest.version,
                "variant": loaded.variant,
                "digest": loaded.digest,
                "providers": ",".join(service.providers),
            }
        )
        state.ready = True
        log.info(
            "ready: %s %s (%s) on %s",
            loaded.manifest.name,
            loaded.manifest.version,
            loaded.variant,
            ",".join(service.providers),
        )
    except Exception as exc:
        state.load_error = f"{type(exc).__name__}: {exc}"
        log.error("cannot serve the bundle: %s", state.load_error)
        if state.exit_on_load_error:
            signal.raise_signal(signal.SIGTERM)  # let the server shut down; the CLI exits non-zero


def create_app(
    settings: Settings | None = None,
    bundle: LoadedBundle | None = None,
    *,
    setup_logging: bool = False,
    exit_on_load_error: bool = True,
) -> FastAPI:
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or Settings()
        if setup_logging:
            configure_logging(config.log_level)
        state = app.state
        state.settings = config
        state.exit_on_load_error = exit_on_load_error
        restore = _install_drain_hook(state)
        loading = asyncio.create_task(_load(app, config, bundle, metrics))
        try:
            yield
        finally:
            state.draining = True
            state.ready = False
            loading.cancel()
            if state.service is not None:
                await state.service.stop(config.graceful_timeout_s)
            restore()

    app = FastAPI(
        title="ViT inference service",
        version="0.1.0",
        description="Image classification with Vision Transformers on ONNX Runtime, dynamic batching "
        'and attention-rollout explanations. Errors are `{"error": {"code", "message"}}`.',
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = None
    app.state.ready = False
    app.state.draining = False
    app.state.load_error = None
    app.state.metrics = metrics

    install_error_handlers(app)
    secured = [Depends(require_api_key)]
    app.include_router(health.router)
    app.include_router(classify.router, dependencies=secured)
    app.include_router(explain.router, dependencies=secured)
    app.include_router(model.router, dependencies=secured)
    metrics.instrument(app)
    app.add_middleware(DrainingMiddleware, is_draining=lambda: bool(app.state.draining))
    app.add_middleware(RequestIdMiddleware)  # outermost: every response, even refusals, carries the id
    return app


app = create_app(setup_logging=True)
