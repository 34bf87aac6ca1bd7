"""Small random ViTs for the importer tests (imported by the test modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model_export.config import ViTConfig
from model_export.model import ViT
from service.bundle import Preprocessing

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


FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def preprocess(rgb: np.ndarray, pre: Preprocessing) -> torch.Tensor:
    """A recorded Preprocessing done with Pillow and NumPy, as serving does: -> [1, 3, H, W] float."""
    image = Image.fromarray(rgb).convert("RGB")
    height, width = pre.input_size
    if pre.resize == "shorter_side":
        w, h = image.size
        scale = pre.resize_size / min(w, h)
        size = (pre.resize_size, int(h * scale)) if w <= h else (int(w * scale), pre.resize_size)
        image = image.resize(size, FILTERS[pre.interpolation])
        left, top = round((image.width - width) / 2), round((image.height - height) / 2)
        image = image.crop((left, top, left + width, top + height))
    else:
        image = image.resize((width, height), FILTERS[pre.interpolation])
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = (pixels - np.array(pre.mean, np.float32)) / np.array(pre.std, np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
