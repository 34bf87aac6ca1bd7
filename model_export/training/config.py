"""The training configuration: every hyper-parameter of a run, resolved and written to ``config.json``.

Fields left ``None`` are filled by :meth:`TrainConfig.resolve` from the recipe, the preset or the source
checkpoint, so the file a run writes is complete: ``vit-export train --config runs/X/config.json`` rebuilds
the same run without consulting any default that might change later.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_export.config import strict_from_dict
from model_export.training.attention import ATTENTION_KERNELS

RECIPES = ("scratch", "finetune")
AUGMENTATIONS = ("auto", "none", "digits", "photo", "flip")

# The embedded default: a small ViT for 8×8 digits upscaled to 32×32, an 8×8 grid of 4-px patches.
DEFAULT_MODEL: dict[str, Any] = dict(image_size=32, patch_size=4, dim=64, depth=4, heads=4, mlp_dim=128)

# Recipe defaults: ViT paper Appendix B.1.1 for fine-tuning; DeiT-style AdamW for training from scratch.
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "scratch": dict(
        optimizer="adamw",
        epochs=40,
        batch_size=64,
        lr=2e-3,
        weight_decay=0.05,
        momentum=0.9,
        label_smoothing=0.1,
        warmup_epochs=4.0,
        grad_clip=1.0,
    ),
    "finetune": dict(
        optimizer="sgd",
        epochs=7,
        batch_size=512,
        lr=0.01,
        weight_decay=0.0,
        momentum=0.9,
        label_smoothing=0.0,
        warmup_epochs=0.5,
        grad_clip=1.0,
    ),
}


@dataclass
class TrainConfig:
    """One training run. ``None`` means "resolve from recipe / preset / checkpoint" (see ``resolve``)."""

    dataset: str = "digits"
    recipe: str = "scratch"
    preset: str | None = None
    from_checkpoint: str | None = None
    # architecture (from the preset, the checkpoint or DEFAULT_MODEL unless given)
    image_size: int | None = None
    patch_size: int | None = None
    dim: int | None = None
    depth: int | None = None
    heads: int | None = None
    mlp_dim: int | None = None
    dropout: float = 0.0
    drop_path: float = 0.0
    # evaluation preprocessing (recorded in model.json; mean/std from the checkpoint when fine-tuning)
    resize: str = "exact"
    resize_size: int | None = None
    interpolation: str = "bilinear"
    mean: list[float] | None = None
    std: list[float] | None = None
    # optimisation
    optimizer: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    micro_batch_size: int | None = None
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float | None = None
    momentum: float | None = None
    label_smoothing: float | None = None
    warmup_epochs: float | None = None
    grad_clip: float | None = None
    # data
    augment: str = "auto"
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0
    train_limit: int | None = None
    skip_corrupt: bool = False
    workers: int | None = None
    eval_batch_size: int = 256
    # reproducibility and hardware
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    amp: str = "auto"  # "auto": bf16 autocast on CUDA only; "bf16": also on CPU; "none"
    attention: str = "auto"  # "auto" | "fused" | "math": the attention kernel (see training/attention.py)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return strict_from_dict(cls, data, "training config")

    @classmethod
    def read(cls, path: Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object")
        return cls.from_dict(data)

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def merged(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with every non-``None`` override applied (CLI flags over a config file)."""
        values = self.to_dict()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(values)

    def validate(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}")
        if self.recipe == "finetune" and not self.from_checkpoint:
            raise ValueError("the finetune recipe needs --from CKPT (a model directory)")
        if self.amp not in ("auto", "bf16", "none"):
            raise ValueError(f"amp must be 'auto', 'bf16' or 'none', got {self.amp!r}")
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention must be one of {ATTENTION_KERNELS}, got {self.attention!r}")
        if self.interpolation not in ("nearest", "bilinear", "bicubic", "lanczos"):
            raise ValueError(
                f"interpolation must be nearest, bilinear, bicubic or lanczos, got {self.interpolation!r}"
            )
        if self.resize not in ("exact", "shorter_side"):
            raise ValueError(f"resize must be 'exact' or 'shorter_side', got {self.resize!r}")
        if self.optimizer is not None and self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        for name in ("epochs", "batch_size", "micro_batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.micro_batch_size and self.batch_size and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch size {self.batch_size} is not a multiple of micro-batch size {self.micro_batch_size}"
            )
        if not 0.0 <= self.val_fraction < 1.0 or not 0.0 <= self.test_fraction < 1.0:
            raise ValueError("val and test fractions must lie in [0, 1)")

    def resolve_recipe(self) -> TrainConfig:
        """Fill optimisation fields left ``None`` from the recipe's defaults."""
        self.validate()
        values = self.to_dict()
        for key, value in RECIPE_DEFAULTS[self.recipe].items():
            if values.get(key) is None:
                values[key] = value
        if values["micro_batch_size"] is None:
            values["micro_batch_size"] = values["batch_size"]
        resolved = TrainConfig.from_dict(values)
        resolved.validate()
        return resolved
