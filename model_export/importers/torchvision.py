"""torchvision ``vit_b_16``-style state dicts (``torchvision.models.VisionTransformer``).

Same computation as ours under other names: ``nn.MultiheadAttention``'s ``in_proj`` is the fused
[q; k; v] projection, MLPs are ``mlp.0``/``mlp.3`` (``mlp.linear_1``/``linear_2`` before torchvision
0.13), LayerNorm eps 1e-6. Conv-stem variants have no plain patch embedding and are refused.
Preprocessing: ImageNet mean/std, bilinear, shorter side 256 then centre crop 224 (scaled with size).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from model_export.importers.common import (
    DEFAULT_CROP_PCT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointError,
    Converted,
    center_crop_preprocessing,
    infer_config,
    read_tensors,
    refuse_leftovers,
    rename,
)
from model_export.importers.timm import find_weights

_BLOCK = r"encoder\.layers\.encoder_layer_(\d+)\."
# torchvision name (regex) -> our name; one place, read top to bottom
RENAMES = [
    (r"^class_token$", "cls_token"),
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^encoder\.pos_embedding$", "pos_embed"),
    (_BLOCK + r"ln_1\.", r"blocks.\1.norm1."),
    (_BLOCK + r"self_attention\.in_proj_weight$", r"blocks.\1.attn.qkv.weight"),
    (_BLOCK + r"self_attention\.in_proj_bias$", r"blocks.\1.attn.qkv.bias"),
    (_BLOCK + r"self_attention\.out_proj\.", r"blocks.\1.attn.proj."),
    (_BLOCK + r"ln_2\.", r"blocks.\1.norm2."),
    (_BLOCK + r"mlp\.(?:0|linear_1)\.", r"blocks.\1.mlp.fc1."),
    (_BLOCK + r"mlp\.(?:3|linear_2)\.", r"blocks.\1.mlp.fc2."),
    (r"^encoder\.ln\.", "norm."),
    (r"^heads\.head\.", "head."),
    (r"^heads\.pre_logits\.", "pre_logits.0."),
]


def convert_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    if any(k.startswith("conv_proj.conv_") for k in state):
        raise CheckpointError("unsupported torchvision ViT variant: a convolutional stem (conv_stem_configs)")
    out: dict[str, Tensor] = {}
    leftover = []
    for key, value in state.items():
        new = rename(key, RENAMES)
        if new is None:
            leftover.append(key)
        else:
            out[new] = value
    refuse_leftovers(leftover, "torchvision")
    return out


def load(src: Path, heads: int | None = None) -> Converted:
    weights = find_weights(Path(src))
    state = convert_state(read_tensors(weights))
    config = infer_config(state, heads=heads, ln_eps=1e-6)
    preprocessing = center_crop_preprocessing(
        config.image_size, IMAGENET_MEAN, IMAGENET_STD, "bilinear", DEFAULT_CROP_PCT
    )
    return Converted(
        state=state,
        config=config,
        preprocessing=preprocessing,
        source={"weights_file": str(weights), "preprocessing_from": "torchvision ImageClassification preset"},
    )
