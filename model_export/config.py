"""ViT architecture configuration and the paper's presets (Dosovitskiy et al. 2021, Table 1; DeiT-Ti/S)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

# name -> (dim, depth, heads, mlp_dim)
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "ti": (192, 12, 3, 768),
    "s": (384, 12, 6, 1536),
    "b": (768, 12, 12, 3072),
    "l": (1024, 24, 16, 4096),
    "h": (1280, 32, 16, 5120),
}


def _pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))


def strict_from_dict(cls: type, data: dict[str, Any], what: str) -> Any:
    """Build dataclass ``cls`` from ``data``, refusing keys it does not know (a typo must not pass)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys: {unknown}")
    return cls(**data)


@dataclass
class ViTConfig:
    """Everything needed to build a ViT; serialised as JSON next to its weights."""

    image_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    qkv_bias: bool = True
    ln_eps: float = 1e-6
    gelu: Literal["exact", "tanh"] = "exact"
    distilled: bool = False  # DeiT distillation token + second head
    pre_logits_dim: int | None = None  # Google's ImageNet-21k checkpoints: tanh(Linear) before the head
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_size = _pair(self.image_size)
        height, width = self.image_size
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image size {height}x{width} is not divisible by patch size {self.patch_size}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.gelu not in ("exact", "tanh"):
            raise ValueError(f"gelu must be 'exact' or 'tanh', got {self.gelu!r}")

    @property
    def grid_size(self) -> tuple[int, int]:
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    @property
    def num_prefix_tokens(self) -> int:
        return 2 if self.distilled else 1

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ViTConfig:
        """`ViTConfig.preset("b", patch_size=16)` — the paper's ViT-B/16; overrides win."""
        key = name.lower().removeprefix("vit-").removeprefix("vit_")
        if key not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        dim, depth, heads, mlp_dim = PRESETS[key]
        values: dict[str, Any] = dict(dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim)
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViTConfig:
        return strict_from_dict(cls, data, "ViT config")
