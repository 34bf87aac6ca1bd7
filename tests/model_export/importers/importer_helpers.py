"""Small random ViTs for the importer tests (imported by the test modules)."""

from __future__ import annotations

from pathlib import Path

import torch

from model_export.config import ViTConfig
from model_export.model import ViT

SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
DEIT_TINY = SHARED_DATA / "deit_tiny_patch16_224.safetensors"


def tiny_config(**overrides) -> ViTConfig:
    values = dict(image_size=32, patch_size=8, num_classes=5, dim=32, depth=2, heads=4, mlp_dim=64)
    values.update(overrides)
    return ViTConfig(**values)


def random_vit(config: ViTConfig, seed: int = 0) -> ViT:
    """A ViT whose every tensor (LayerNorms and biases included) is random, so no mapping hides behind
    a zero or a one."""
    torch.manual_seed(seed)
    model = ViT(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                param.copy_(1 + 0.2 * torch.randn_like(param))
            else:
                param.copy_(0.2 * torch.randn_like(param))
    return model
