"""`vit-export import`: convert a foreign checkpoint into a model directory (registered on the app)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Format(StrEnum):
    hf = "hf"
    timm = "timm"
    deit = "deit"
    npz = "npz"
    torchvision = "torchvision"


class Normalisation(StrEnum):
    imagenet = "imagenet"
    inception = "inception"


def import_command(
    src: Annotated[Path, typer.Argument(help="Checkpoint file, or directory (hf; timm Hub layout).")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Layout of SRC.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    image_size: Annotated[
        str | None, typer.Option("--image-size", help="Load at H or H,W; position embeddings are resampled.")
    ] = None,
    heads: Annotated[
        int | None, typer.Option("--heads", min=1, help="Attention heads, where the weights do not say.")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Class names: JSON list or one per line.")
    ] = None,
    preprocessing: Annotated[
        Normalisation | None,
        typer.Option("--preprocessing", help="Override the recorded mean/std (imagenet or inception=0.5)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing OUT.")] = False,
) -> None:
    """Convert an HF / timm / DeiT / Google .npz / torchvision ViT checkpoint to this project's layout."""
    from model_export.checkpoint import save_checkpoint
    from model_export.importers import CheckpointError, load_foreign

    if out.exists() and not overwrite:
        typer.echo(f"error: {out} already exists (pass --overwrite to replace it)", err=True)
        raise typer.Exit(2)
    try:
        model, info = load_foreign(
            fmt.value,
            src,
            image_size=image_size,
            heads=heads,
            labels=labels,
            preprocessing=preprocessing.value if preprocessing else None,
        )
        save_checkpoint(out, model, info, overwrite=overwrite)
    except (CheckpointError, FileExistsError) as exc:
        typer.echo(f"error: cannot import {src} as {fmt.value}: {exc}", err=True)
        raise typer.Exit(1) from None
    c, p = info.config, info.preprocessing
    typer.echo(
        f"imported {fmt.value} {src} -> {out}\n"
        f"  ViT patch {c.patch_size}, dim {c.dim}, depth {c.depth}, heads {c.heads}, mlp {c.mlp_dim}, "
        f"image {c.image_size[0]}x{c.image_size[1]}, {c.num_classes} classes"
        f"{', distilled' if c.distilled else ''}{', pre-logits' if c.pre_logits_dim else ''}; "
        f"{model.num_params():,} parameters\n"
        f"  preprocessing: {p.resize} {p.resize_size or ''} {p.interpolation}, mean {p.mean}, std {p.std} "
        f"({info.source.get('preprocessing_from', '')})"
    )


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
