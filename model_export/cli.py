"""`vit-export`: one Typer app; each stage registers its own commands from its own package."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="vit-export",
    no_args_is_help=True,
    add_completion=False,
    help="Build, import, train, export and verify Vision Transformers for the ViT service.",
)

# Each stage's `cli.register(app)` adds its commands; heavy imports stay inside the commands.
STAGES = (
    "model_export.importers.cli",
    "model_export.training.cli",
    "model_export.export.cli",
)
for _stage in STAGES:
    importlib.import_module(_stage).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
