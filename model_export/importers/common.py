"""What every importer shares: safe reading, key checking, architecture inference, preprocessing recipes.

Each format module turns its foreign checkpoint into a ``Converted``: a state dict already in this
project's (timm) layout plus what the weights cannot say (heads, LayerNorm eps, preprocessing, labels).
Everything after that — building the ViT, checking keys and shapes, resampling position embeddings —
happens once, here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from model_export.config import PRESETS, ViTConfig
from model_export.model import ViT
from model_export.pos_embed import resample_abs_pos_embed
from service.bundle import Preprocessing


class CheckpointError(ValueError):
    """A checkpoint that cannot be imported; the message says what is wrong with it."""


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
NORMALISATIONS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "inception": (INCEPTION_MEAN, INCEPTION_STD)}
DEFAULT_CROP_PCT = 0.875  # 224 -> 256, the DeiT / timm / torchvision evaluation recipe

# Fused-qkv formats do not store the head count; every published ViT uses the paper's value for its width.
HEADS_BY_DIM = {dim: heads for dim, _depth, heads, _mlp in PRESETS.values()}


@dataclass
class Converted:
    """A foreign checkpoint in this project's layout, at the resolution it was trained at."""

    state: dict[str, Tensor]
    config: ViTConfig
    preprocessing: Preprocessing
    labels: list[str] | None = None
    source: dict[str, Any] = field(default_factory=dict)


# -- reading ----------------------------------------------------------------------------------------


def read_tensors(path: Path) -> dict[str, Tensor]:
    """A flat name -> tensor mapping from a safetensors or PyTorch file, never unpickling arbitrary code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file")
    kind = _sniff(path)
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return unwrap_state_dict(load_file(str(path)), path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file (truncated?): {exc}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load fails in many ways on damaged files; all mean the same here
        first = _first_reason(exc)
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated, or holding objects other than "
            f"tensors, which are never unpickled): {first}"
        ) from exc
    return unwrap_state_dict(obj, path)


def _first_reason(exc: Exception) -> str:
    """torch.load's messages are long; keep the line that says why (e.g. "Unsupported global: ...")."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    why = [line for line in lines if "Unsupported global" in line]
    return (why or lines or [type(exc).__name__])[0]


def _sniff(path: Path) -> str:
    """Tell safetensors from torch files by their first bytes, whatever the name says."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head.startswith(b"PK") or head[:1] == b"\x80":  # torch zip archive / legacy pickle protocol 2+
        return "torch"
    raise CheckpointError(
        f"{path} is neither a safetensors nor a PyTorch checkpoint (starts with {head[:8]!r})"
    )


def unwrap_state_dict(obj: Any, path: Path | str = "checkpoint") -> dict[str, Tensor]:
    """Peel the usual training wrappers ({"model": ...}, {"state_dict": ...}, "module." prefixes)."""
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path} holds no state dict (found {type(obj).__name__})")
    state = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state:
        raise CheckpointError(f"{path} holds no tensors (keys: {sorted(map(str, obj))[:8]})")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


# -- architecture ------------------------------------------------------------------------------------


def infer_config(
    state: dict[str, Tensor],
    *,
    heads: int | None = None,
    ln_eps: float = 1e-6,
    gelu: str = "exact",
    image_size: tuple[int, int] | None = None,
) -> ViTConfig:
    """A ViTConfig from tensor shapes of a state dict in this project's layout."""
    need = ["patch_embed.proj.weight", "pos_embed", "cls_token", "blocks.0.mlp.fc1.weight", "head.weight"]
    absent = [k for k in need if k not in state]
    if absent:
        raise CheckpointError(
            f"not a ViT classifier checkpoint in the expected layout: missing keys: {absent}; "
            f"found keys like {sorted(state)[:6]}"
        )
    proj = state["patch_embed.proj.weight"]
    if proj.ndim != 4 or proj.shape[-1] != proj.shape[-2]:
        raise CheckpointError(f"patch embedding has shape {tuple(proj.shape)}, expected [dim, C, P, P]")
    dim, in_chans, patch = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[-1])
    depth = 0
    while f"blocks.{depth}.norm1.weight" in state:
        depth += 1
    distilled = "dist_token" in state
    prefix = 2 if distilled else 1
    if image_size is None:
        count = int(state["pos_embed"].shape[1]) - prefix
        side = math.isqrt(max(count, 0))
        if side * side != count or count == 0:
            raise CheckpointError(
                f"pos_embed has {count} patch positions, not a square grid; pass the image size explicitly"
            )
        image_size = (side * patch, side * patch)
    if heads is None:
        heads = HEADS_BY_DIM.get(dim)
        if heads is None:
            raise CheckpointError(
                f"width {dim} is not a standard ViT width {sorted(HEADS_BY_DIM)}: the weights do not say "
                "how many attention heads it has; pass --heads"
            )
    pre_logits = state.get("pre_logits.0.weight")
    try:
        return ViTConfig(
            image_size=image_size,
            patch_size=patch,
            in_chans=in_chans,
            num_classes=int(state["head.weight"].shape[0]),
            dim=dim,
            depth=depth,
            heads=int(heads),
            mlp_dim=int(state["blocks.0.mlp.fc1.weight"].shape[0]),
            qkv_bias="blocks.0.attn.qkv.bias" in state,
            ln_eps=float(ln_eps),
            gelu=gelu,  # type: ignore[arg-type]
            distilled=distilled,
            pre_logits_dim=int(pre_logits.shape[0]) if pre_logits is not None else None,
        )
    except ValueError as exc:
        raise CheckpointError(f"inconsistent architecture: {exc}") from exc


def check_state(state: dict[str, Tensor], model: ViT, resample_pos_embed: bool) -> None:
    """Refuse anything but an exact match, naming the missing/unexpected keys and bad shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not match the ViT: missing keys: {missing} / unexpected keys: {unexpected}"
        )
    bad = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape and not (k == "pos_embed" and resample_pos_embed)
    ]
    if bad:
        raise CheckpointError("tensor shapes do not match the inferred ViT: " + "; ".join(bad))


def build_model(converted: Converted, image_size: tuple[int, int] | None = None) -> tuple[ViT, ViTConfig]:
    """The ViT holding the converted weights, at the checkpoint's resolution or at ``image_size``."""
    config, state = converted.config, dict(converted.state)
    check_state(state, meta_model(config), resample_pos_embed=False)
    if image_size is not None and tuple(image_size) != tuple(config.image_size):
        try:
            new = replace(config, image_size=tuple(image_size), extra=dict(config.extra))
        except ValueError as exc:
            raise CheckpointError(str(exc)) from exc
        # the trained grid is passed explicitly: it need not be square (HF configs may say [H, W])
        state["pos_embed"] = resample_abs_pos_embed(
            state["pos_embed"], new.grid_size, config.num_prefix_tokens, old_grid=config.grid_size
        )
        config = new
    model = ViT(config)
    model.load_state_dict_resampled(state)
    return model.eval(), config


def meta_model(config: ViTConfig) -> ViT:
    """A shape-only ViT for key checks: no memory, no initialisation cost."""
    with torch.device("meta"):
        return ViT(config)


# -- preprocessing -----------------------------------------------------------------------------------


def center_crop_preprocessing(
    input_size: tuple[int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    interpolation: str = "bicubic",
    crop_pct: float = DEFAULT_CROP_PCT,
) -> Preprocessing:
    """timm/DeiT evaluation: shorter side to floor(size / crop_pct), centre crop ``input_size``."""
    if crop_pct >= 1.0:
        return Preprocessing(
            input_size=input_size, resize="exact", interpolation=interpolation, mean=mean, std=std
        )
    return Preprocessing(
        input_size=input_size,
        resize="shorter_side",
        resize_size=math.floor(max(input_size) / crop_pct),
        interpolation=interpolation,
        mean=mean,
        std=std,
    )


def resize_preprocessing(pre: Preprocessing, input_size: tuple[int, int]) -> Preprocessing:
    """The same recipe (crop fraction, filter, normalisation) for another input size."""
    if pre.resize == "shorter_side":
        return center_crop_preprocessing(input_size, pre.mean, pre.std, pre.interpolation, pre.crop_pct)
    return replace(pre, input_size=tuple(input_size))


def renormalise(pre: Preprocessing, name: str) -> Preprocessing:
    if name not in NORMALISATIONS:
        raise CheckpointError(f"unknown normalisation {name!r}; choose one of {sorted(NORMALISATIONS)}")
    mean, std = NORMALISATIONS[name]
    return replace(pre, mean=mean, std=std)


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """ "384" or "384,512" (H,W) -> (H, W)."""
    if text is None or str(text).strip() == "":
        return None
    parts = [p for p in str(text).replace("x", ",").split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError as exc:
        raise CheckpointError(f"bad image size {text!r}: expected H or H,W") from exc
    if len(values) not in (1, 2) or min(values) <= 0:
        raise CheckpointError(f"bad image size {text!r}: expected H or H,W")
    return (values[0], values[-1])


def take(state: dict[str, Tensor], key: str) -> Tensor:
    """Pop a tensor a converter needs, with a clear error naming it when absent."""
    if key not in state:
        raise CheckpointError(f"checkpoint is missing key {key!r}")
    return state.pop(key)


def rename(key: str, renames: list[tuple[str, str]]) -> str | None:
    """The first rule of a (regex, replacement) table that matches ``key``, applied; None if none does."""
    for pattern, target in renames:
        new, hits = re.subn(pattern, target, key)
        if hits:
            return new
    return None


def refuse_leftovers(leftover: dict[str, Any] | list[str], what: str) -> None:
    """Every foreign tensor must land somewhere: unknown ones mean an architecture we would get wrong."""
    names = sorted(leftover)
    if names:
        shown = names[:12] + ([f"... ({len(names) - 12} more)"] if len(names) > 12 else [])
        raise CheckpointError(f"unexpected keys for a {what} ViT: {shown}")
