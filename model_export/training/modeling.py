"""From a training config to a model: a new ViT (preset or the embedded default), or a model directory
loaded for fine-tuning with a new zero-initialised head and, if asked, position embeddings resampled to
another resolution. Resolved values are written back into the config, so config.json is complete."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from model_export.checkpoint import load_checkpoint, read_model_info
from model_export.config import PRESETS, ViTConfig
from model_export.model import ViT
from model_export.training.config import DEFAULT_MODEL, TrainConfig
from service.bundle import Preprocessing

ARCH_FIELDS = ("image_size", "patch_size", "dim", "depth", "heads", "mlp_dim")
DEFAULT_MEAN_STD = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])


class CheckpointMismatch(ValueError):
    """The --from checkpoint does not fit the requested preset or overrides."""


def resolve_model_config(config: TrainConfig) -> TrainConfig:
    """Fill architecture fields and mean/std from the checkpoint, the preset or DEFAULT_MODEL."""
    values = config.to_dict()
    if config.from_checkpoint:
        source = Path(config.from_checkpoint)
        try:
            info = read_model_info(source)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"--from {source}: {exc}") from exc
        _check_against_preset(config, info.config, source)
        arch = info.config
        base: dict[str, Any] = dict(
            image_size=arch.image_size[0], patch_size=arch.patch_size, dim=arch.dim, depth=arch.depth,
            heads=arch.heads, mlp_dim=arch.mlp_dim,
        )  # fmt: skip
        if arch.image_size[0] != arch.image_size[1]:
            raise CheckpointMismatch(f"{source}: non-square checkpoints are not supported for training")
        for key in ("patch_size", "dim", "depth", "heads", "mlp_dim"):
            if values[key] is not None and values[key] != base[key]:
                flag = "--" + key.replace("_", "-")
                raise CheckpointMismatch(
                    f"{flag} {values[key]} does not match the checkpoint {source} ({base[key]})"
                )
        values["mean"] = values["mean"] or list(info.preprocessing.mean)
        values["std"] = values["std"] or list(info.preprocessing.std)
    elif config.preset:
        preset = ViTConfig.preset(config.preset, patch_size=config.patch_size or 16)
        base = dict(image_size=224, patch_size=preset.patch_size, dim=preset.dim, depth=preset.depth,
                    heads=preset.heads, mlp_dim=preset.mlp_dim)  # fmt: skip
    else:
        base = dict(DEFAULT_MODEL)
    for key in ARCH_FIELDS:
        if values[key] is None:
            values[key] = base[key]
    values["mean"] = values["mean"] or DEFAULT_MEAN_STD[0]
    values["std"] = values["std"] or DEFAULT_MEAN_STD[1]
    resolved = TrainConfig.from_dict(values)
    vit_config(resolved, num_classes=1)  # raises on impossible shapes (e.g. size not divisible by patch)
    return resolved


def _check_against_preset(config: TrainConfig, arch: ViTConfig, source: Path) -> None:
    if not config.preset:
        return
    key = config.preset.lower().removeprefix("vit-").removeprefix("vit_")
    if key not in PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; choose one of {sorted(PRESETS)}")
    dim, depth, heads, mlp_dim = PRESETS[key]
    if (dim, depth, heads, mlp_dim) != (arch.dim, arch.depth, arch.heads, arch.mlp_dim):
        raise CheckpointMismatch(
            f"--from {source} is dim={arch.dim} depth={arch.depth} heads={arch.heads} mlp={arch.mlp_dim}, "
            f"but preset {config.preset!r} is dim={dim} depth={depth} heads={heads} mlp={mlp_dim}"
        )


def vit_config(config: TrainConfig, num_classes: int) -> ViTConfig:
    assert config.image_size is not None and config.patch_size is not None
    return ViTConfig(
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_classes=num_classes,
        dim=config.dim or 0,
        depth=config.depth or 0,
        heads=config.heads or 1,
        mlp_dim=config.mlp_dim or 0,
        dropout=config.dropout,
        drop_path=config.drop_path,
    )


def eval_preprocessing(config: TrainConfig) -> Preprocessing:
    """The preprocessing the trained model expects at evaluation (recorded in model.json)."""
    if config.image_size is None or config.mean is None or config.std is None:
        raise ValueError("the config is not resolved (image_size/mean/std missing)")
    return Preprocessing(
        input_size=(config.image_size, config.image_size),
        resize=config.resize,
        resize_size=config.resize_size,
        interpolation=config.interpolation,
        mean=tuple(config.mean),  # type: ignore[arg-type]
        std=tuple(config.std),  # type: ignore[arg-type]
    )


def build_model(config: TrainConfig, num_classes: int) -> tuple[ViT, dict[str, Any]]:
    """The model to train, and a ``source`` record for model.json. Uses torch's global RNG for init."""
    if not config.from_checkpoint:
        return ViT(vit_config(config, num_classes)), {"kind": "trained", "recipe": config.recipe}
    assert config.image_size is not None
    size = (config.image_size, config.image_size)
    model, info = load_checkpoint(Path(config.from_checkpoint), image_size=size)
    model.config = replace(model.config, dropout=config.dropout, drop_path=config.drop_path)
    _set_regularisation(model, config.dropout, config.drop_path)
    model.reset_head(num_classes)  # paper B.1.1: a new zero-initialised head
    source = {
        "kind": "fine-tuned",
        "recipe": config.recipe,
        "from": str(config.from_checkpoint),
        "from_source": info.source,
    }
    return model, source


def _set_regularisation(model: ViT, dropout: float, drop_path: float) -> None:
    """Apply the run's dropout / stochastic depth to a loaded model (checkpoints store their own)."""
    rates = [drop_path * i / max(len(model.blocks) - 1, 1) for i in range(len(model.blocks))]
    for block, rate in zip(model.blocks, rates, strict=True):
        block.drop_path.prob = rate
        block.attn.attn_drop = dropout
        block.attn.proj_drop.p = dropout
        block.mlp.drop.p = dropout
    model.pos_drop.p = dropout


def count_trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
