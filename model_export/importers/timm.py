"""timm ``vit_*`` checkpoints (.safetensors / .pth / .bin, or a timm Hub directory with config.json).

timm's key layout is this project's layout, so conversion is mostly a check that the checkpoint is the
plain class-token ViT the model implements. Variants that compute something else (global average
pooling with ``fc_norm``, LayerScale, QK-norm, register tokens, CLIP's pre-norm, attention pooling) are
refused by name rather than imported wrongly. Preprocessing comes from the Hub ``pretrained_cfg`` when
one sits beside the weights, otherwise from the name (DeiT: ImageNet mean/std; AugReg / in21k: 0.5).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from torch import Tensor

from model_export.importers.common import (
    DEFAULT_CROP_PCT,
    NORMALISATIONS,
    CheckpointError,
    Converted,
    center_crop_preprocessing,
    infer_config,
    read_tensors,
)
from service.bundle import Preprocessing

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")

# key fragment -> the feature it signals, which our ViT does not compute
UNSUPPORTED = {
    "fc_norm.": "global average pooling with fc_norm (global_pool='avg')",
    ".ls1.": "LayerScale (DeiT-III style)",
    ".gamma_1": "LayerScale (DeiT-III / CaiT style)",
    ".q_norm.": "QK-normalisation",
    "reg_token": "register tokens",
    "norm_pre.": "a pre-encoder norm (CLIP style)",
    "attn_pool.": "attention pooling (MAP head)",
    "patch_embed.norm.": "a normalised patch embedding",
    "patch_embed.backbone.": "a hybrid CNN stem",
    ".attn.q_bias": "BEiT-style split qkv bias",
    "mask_token": "a mask token (DINOv2 / MIM)",
}

_INTERPOLATIONS = {"bicubic", "bilinear", "nearest", "lanczos"}


def convert_timm_state(state: dict[str, Tensor], what: str = "timm") -> dict[str, Tensor]:
    """timm/DeiT key layout -> ours: refuse variants we cannot compute, rename the old pre-logits."""
    for fragment, feature in UNSUPPORTED.items():
        hits = sorted(k for k in state if fragment in k)
        if hits:
            raise CheckpointError(
                f"unsupported {what} ViT variant: it uses {feature} (keys {hits[:3]}); only plain "
                "class-token ViTs (global_pool='token') can be imported"
            )
    if "cls_token" not in state and "pos_embed" in state:
        raise CheckpointError(f"unsupported {what} ViT variant: no class token (class_token=False)")
    if "head.weight" not in state and "blocks.0.norm1.weight" in state:
        raise CheckpointError(
            f"the {what} checkpoint has no classification head (head.weight); import a classifier"
        )
    out = {}
    for key, value in state.items():
        out[re.sub(r"^pre_logits\.fc\.", "pre_logits.0.", key)] = value
    return out


def find_weights(src: Path, names: tuple[str, ...] = WEIGHT_FILES) -> Path:
    """A file as given, or the weights file inside a Hub-style directory."""
    src = Path(src)
    if src.is_dir():
        for name in names:
            if (src / name).is_file():
                return src / name
        raise CheckpointError(f"{src} is a directory without any of {list(names)}")
    if not src.exists():
        raise CheckpointError(f"{src} does not exist")
    return src


def pretrained_cfg(src: Path) -> dict[str, Any] | None:
    """timm Hub repos keep eval preprocessing in config.json -> pretrained_cfg."""
    directory = src if src.is_dir() else src.parent
    path = directory / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    cfg = data.get("pretrained_cfg") if isinstance(data, dict) else None
    return dict(cfg) if isinstance(cfg, dict) else None


def guess_normalisation(name: str) -> tuple[str, str]:
    lowered = name.lower()
    if "deit" in lowered:
        return "imagenet", "file name mentions DeiT"
    if any(hint in lowered for hint in ("augreg", "in21k", "orig_in21k", "google")):
        return "inception", "file name marks a Google/AugReg checkpoint"
    return "imagenet", "default (no pretrained_cfg or name hint); override with --preprocessing"


def preprocessing_from_cfg(cfg: dict[str, Any], input_size: tuple[int, int]) -> Preprocessing:
    interpolation = str(cfg.get("interpolation", "bicubic"))
    if interpolation not in _INTERPOLATIONS:
        interpolation = "bicubic"
    mean = tuple(cfg.get("mean", NORMALISATIONS["inception"][0]))
    std = tuple(cfg.get("std", NORMALISATIONS["inception"][1]))
    crop_pct = float(cfg.get("crop_pct", DEFAULT_CROP_PCT))
    if cfg.get("crop_mode", "center") == "squash":
        crop_pct = 1.0
    return center_crop_preprocessing(input_size, mean, std, interpolation, crop_pct)


def load(src: Path, heads: int | None = None) -> Converted:
    src = Path(src)
    weights = find_weights(src)
    state = convert_timm_state(read_tensors(weights))
    config = infer_config(state, heads=heads, ln_eps=1e-6)
    cfg = pretrained_cfg(src)
    if cfg is not None:
        preprocessing = preprocessing_from_cfg(cfg, config.image_size)
        origin = "pretrained_cfg in config.json"
    else:
        normalisation, origin = guess_normalisation(weights.name if not src.is_dir() else src.name)
        mean, std = NORMALISATIONS[normalisation]
        preprocessing = center_crop_preprocessing(config.image_size, mean, std, "bicubic", DEFAULT_CROP_PCT)
    return Converted(
        state=state,
        config=config,
        preprocessing=preprocessing,
        source={"weights_file": str(weights), "preprocessing_from": origin},
    )
