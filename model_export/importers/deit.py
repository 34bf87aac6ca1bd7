"""DeiT checkpoints from facebookresearch/deit (Touvron et al. 2021), distilled or not.

The released files wrap a timm-layout state dict as ``{"model": state_dict}``; distilled models add a
``dist_token`` and a second head ``head_dist`` whose logits are averaged with the class head at
inference. Preprocessing is DeiT's evaluation recipe: ImageNet mean/std, bicubic, shorter side to
``int(size / 0.875)`` (256 for 224), centre crop.
"""

from __future__ import annotations

from pathlib import Path

from model_export.importers.common import (
    DEFAULT_CROP_PCT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Converted,
    center_crop_preprocessing,
    infer_config,
    read_tensors,
)
from model_export.importers.timm import convert_timm_state, find_weights


def load(src: Path, heads: int | None = None) -> Converted:
    weights = find_weights(Path(src))
    state = convert_timm_state(read_tensors(weights), what="DeiT")  # read_tensors unwraps {"model": ...}
    config = infer_config(state, heads=heads, ln_eps=1e-6)
    preprocessing = center_crop_preprocessing(
        config.image_size, IMAGENET_MEAN, IMAGENET_STD, "bicubic", DEFAULT_CROP_PCT
    )
    return Converted(
        state=state,
        config=config,
        preprocessing=preprocessing,
        source={"weights_file": str(weights), "preprocessing_from": "DeiT evaluation recipe"},
    )
