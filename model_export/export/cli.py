"""Commands of this stage (registered on the `vit-export` app)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered yet."""
