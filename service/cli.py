"""``vit-serve``: check the bundle, then serve it with uvicorn and a graceful shutdown."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from service.bundle.loader import load_bundle
from service.bundle.manifest import BundleError
from service.core.config import Settings

cli = typer.Typer(name="vit-serve", add_completion=False, help=__doc__)


@cli.command()
def serve(
    bundle: Annotated[
        Path | None, typer.Option(help="bundle directory or .tar (default: $VIT_BUNDLE)")
    ] = None,
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
) -> None:
    """Serve a ViT bundle over HTTP. Other settings come from VIT_* environment variables."""
    from service.app import create_app

    overrides = {k: v for k, v in {"bundle": bundle, "host": host, "port": port}.items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        typer.echo(f"error: invalid settings:\n{exc}", err=True)
        raise typer.Exit(2) from None
    try:
        loaded = load_bundle(settings.bundle, settings.variant)
    except BundleError as exc:
        typer.echo(f"error: cannot serve {settings.bundle}: {exc}", err=True)
        raise typer.Exit(2) from None

    app = create_app(settings, loaded, setup_logging=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.graceful_timeout_s,
    )
    # uvicorn re-raises the shutdown signal once it has drained; a handled SIGTERM is a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.Server(config).run()
    if app.state.load_error:
        raise typer.Exit(1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
