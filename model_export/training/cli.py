"""`vit-export train` and `vit-export evaluate` (registered on the `vit-export` app).

Every hyper-parameter has a flag; unset flags fall back to ``--config FILE`` and then to the recipe's
defaults, and the resolved values land in the run's config.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option
HELP_DATA = "dataset: digits | cifar10:PATH | folder:PATH"


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)


def train(
    out: Annotated[Path, Opt("--out", help="run directory to create, e.g. runs/NAME")],
    config_file: Annotated[
        Path | None, Opt("--config", help="start from this config.json (flags override)")
    ] = None,
    resume: Annotated[bool, Opt("--resume", help="continue the unfinished run in --out")] = False,
    dataset: Annotated[str | None, Opt(help=HELP_DATA)] = None,
    recipe: Annotated[str | None, Opt(help="scratch | finetune")] = None,
    preset: Annotated[str | None, Opt(help="ti | s | b | l | h (ViT sizes)")] = None,
    from_checkpoint: Annotated[str | None, Opt("--from", help="model directory to fine-tune")] = None,
    image_size: Annotated[
        int | None, Opt(help="training/eval resolution (position embeddings resampled)")
    ] = None,
    patch_size: Annotated[int | None, Opt()] = None,
    dim: Annotated[int | None, Opt()] = None,
    depth: Annotated[int | None, Opt()] = None,
    heads: Annotated[int | None, Opt()] = None,
    mlp_dim: Annotated[int | None, Opt()] = None,
    dropout: Annotated[float | None, Opt()] = None,
    drop_path: Annotated[float | None, Opt(help="stochastic depth rate of the last block")] = None,
    resize: Annotated[str | None, Opt(help="eval resize: exact | shorter_side")] = None,
    resize_size: Annotated[int | None, Opt(help="shorter side before the centre crop")] = None,
    interpolation: Annotated[str | None, Opt(help="nearest | bilinear | bicubic | lanczos")] = None,
    mean: Annotated[str | None, Opt(help="normalisation mean, 'r,g,b' (default: checkpoint's or .5)")] = None,
    std: Annotated[str | None, Opt(help="normalisation std, 'r,g,b'")] = None,
    optimizer: Annotated[str | None, Opt(help="sgd | adamw (default from the recipe)")] = None,
    epochs: Annotated[int | None, Opt()] = None,
    batch_size: Annotated[int | None, Opt(help="images per optimiser step (all processes)")] = None,
    micro_batch_size: Annotated[int | None, Opt(help="images per forward pass; gradients accumulate")] = None,
    lr: Annotated[float | None, Opt(help="peak learning rate")] = None,
    min_lr: Annotated[float | None, Opt(help="learning rate at the end of the cosine")] = None,
    weight_decay: Annotated[float | None, Opt()] = None,
    momentum: Annotated[float | None, Opt(help="SGD momentum")] = None,
    label_smoothing: Annotated[float | None, Opt()] = None,
    warmup_epochs: Annotated[float | None, Opt(help="linear warmup length in epochs")] = None,
    grad_clip: Annotated[float | None, Opt(help="global gradient-norm limit (0: off)")] = None,
    augment: Annotated[str | None, Opt(help="auto | none | digits | photo | flip")] = None,
    val_fraction: Annotated[float | None, Opt()] = None,
    test_fraction: Annotated[float | None, Opt(help="for datasets without a test split")] = None,
    split_seed: Annotated[int | None, Opt()] = None,
    train_limit: Annotated[int | None, Opt(help="train on a fixed random subset of this size")] = None,
    skip_corrupt: Annotated[bool | None, Opt("--skip-corrupt/--no-skip-corrupt")] = None,
    workers: Annotated[int | None, Opt(help="DataLoader worker processes")] = None,
    eval_batch_size: Annotated[int | None, Opt()] = None,
    seed: Annotated[int | None, Opt()] = None,
    threads: Annotated[int | None, Opt(help="torch threads per process (recorded)")] = None,
    device: Annotated[str | None, Opt(help="auto | cpu | cuda")] = None,
    amp: Annotated[str | None, Opt(help="auto (bf16 on CUDA) | bf16 | none")] = None,
    attention: Annotated[
        str | None, Opt(help="auto | fused | math: attention kernel (auto: math for short CPU bf16 runs)")
    ] = None,
) -> None:
    """Train a ViT from scratch or fine-tune a model directory; writes a run directory."""
    overrides = {k: v for k, v in locals().items() if k not in ("out", "config_file", "resume")}
    from model_export.training.config import TrainConfig

    if resume and (config_file or any(v is not None for v in overrides.values())):
        _fail("--resume continues with the run's own config.json; drop the other options")
    for key in ("mean", "std"):
        if overrides[key] is not None:
            overrides[key] = _floats(overrides[key], key)
    try:
        base = TrainConfig.read(config_file) if config_file else TrainConfig()
        config = base.merged(overrides)
        config.validate()
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    _run(config, out, resume)


def _run(config, out: Path, resume: bool) -> None:
    from model_export.training.loop import run_training

    try:
        run_training(config, out, resume=resume)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        _fail(str(exc))


def evaluate(
    run: Annotated[Path, typer.Argument(help="a run (or model) directory")],
    dataset: Annotated[str | None, Opt(help=f"{HELP_DATA} (default: the run's)")] = None,
    split: Annotated[str, Opt(help="train | val | test")] = "test",
    out: Annotated[Path | None, Opt(help="also write the metrics to this JSON file")] = None,
    batch_size: Annotated[int, Opt()] = 256,
    workers: Annotated[int, Opt()] = 0,
) -> None:
    """Recompute test metrics (top-1, top-5, loss, per-class accuracy, confusion) of a saved run."""
    from model_export.training.evaluate import evaluate_run

    try:
        metrics = evaluate_run(run, dataset=dataset, split=split, batch_size=batch_size, workers=workers)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        _fail(str(exc))
    text = json.dumps(metrics, indent=2) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    summary = f"{metrics['split']}: top-1 {metrics['top1']:.2%}"
    if "top5" in metrics:
        summary += f", top-5 {metrics['top5']:.2%}"
    typer.echo(f"{summary}, loss {metrics['loss']:.4f} on {metrics['count']} images", err=True)
    typer.echo(
        json.dumps(
            {k: metrics[k] for k in ("split", "count", "top1", "loss", *(["top5"] * ("top5" in metrics)))}
        )
    )


def _floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        _fail(f"--{name} must be three comma-separated numbers, got {text!r}")
    if len(values) != 3:
        _fail(f"--{name} must be three comma-separated numbers, got {text!r}")
    return values


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)
