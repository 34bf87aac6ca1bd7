"""Hugging Face transformers ``ViTForImageClassification`` directories (config.json + weights).

Two key layouts exist: the one on the Hub (``vit.encoder.layer.N.attention.attention.query`` ...,
written by ``save_pretrained``) and transformers 5's in-memory names (``vit.layers.N.attention.q_proj``
...). Both map here; q, k and v are separate Linears, concatenated into our fused qkv. Architecture,
heads, LayerNorm eps (1e-12 by default) and the activation come from config.json, labels from
``id2label``, preprocessing from preprocessor_config.json when present, else ViTImageProcessor's
defaults: resize straight to the input size (bilinear), mean = std = 0.5.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from model_export.importers.common import (
    INCEPTION_MEAN,
    INCEPTION_STD,
    CheckpointError,
    Converted,
    infer_config,
    read_tensors,
    refuse_leftovers,
    rename,
)
from service.bundle import Preprocessing

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
GELU = {
    "gelu": "exact",
    "gelu_python": "exact",
    "gelu_new": "tanh",
    "gelu_pytorch_tanh": "tanh",
    "gelu_fast": "tanh",
}
PIL_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}

_LAYER = r"^(?:encoder\.layer|layers)\.(\d+)\."
# HF name (regex, after dropping the "vit." prefix) -> our name; q/k/v are gathered separately
RENAMES = [
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (_LAYER + r"layernorm_before\.", r"blocks.\1.norm1."),
    (_LAYER + r"layernorm_after\.", r"blocks.\1.norm2."),
    (_LAYER + r"attention\.(?:output\.dense|o_proj)\.", r"blocks.\1.attn.proj."),
    (_LAYER + r"(?:intermediate\.dense|mlp\.fc1)\.", r"blocks.\1.mlp.fc1."),
    (_LAYER + r"(?:output\.dense|mlp\.fc2)\.", r"blocks.\1.mlp.fc2."),
    (r"^layernorm\.", "norm."),
    (r"^classifier\.", "head."),
]
_QKV = re.compile(_LAYER + r"attention\.(?:attention\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)$")
_QKV_INDEX = {"query": 0, "key": 1, "value": 2, "q": 0, "k": 1, "v": 2}


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a transformers model directory: no config.json")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("model_type") != "vit":
        found = config.get("model_type") if isinstance(config, dict) else None
        raise CheckpointError(f"{path} describes model_type {found!r}; the hf importer reads 'vit' models")
    return config


def read_weights(directory: Path) -> tuple[dict[str, Tensor], list[Path]]:
    """Single-file or sharded (index.json) weights, safetensors preferred."""
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return read_tensors(directory / name), [directory / name]
    for name in INDEX_FILES:
        if (directory / name).is_file():
            weight_map = json.loads((directory / name).read_text()).get("weight_map", {})
            files = [directory / f for f in sorted(set(weight_map.values()))]
            state: dict[str, Tensor] = {}
            for file in files:
                state.update(read_tensors(file))
            return state, files
    raise CheckpointError(f"{directory} has no weights: expected one of {list(WEIGHT_FILES + INDEX_FILES)}")


def convert_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    state = {k.removeprefix("vit."): v for k, v in state.items()}
    out: dict[str, Tensor] = {}
    qkv: dict[tuple[int, str], list[Tensor | None]] = {}
    leftover = []
    for key, value in state.items():
        match = _QKV.match(key)
        if match:
            layer, name, kind = int(match[1]), match[2] or match[3], match[4]
            qkv.setdefault((layer, kind), [None, None, None])[_QKV_INDEX[name]] = value
            continue
        new = rename(key, RENAMES)
        if new is None:
            leftover.append(key)
        else:
            out[new] = value
    refuse_leftovers(leftover, "transformers ViTForImageClassification")
    for (layer, kind), parts in qkv.items():
        absent = [n for n, p in zip(("query", "key", "value"), parts, strict=True) if p is None]
        if absent:
            raise CheckpointError(f"layer {layer} lacks the attention {absent} {kind}")
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat(parts)  # type: ignore[arg-type]
    if "head.weight" not in out:
        raise CheckpointError("no classifier weights: a ViTModel without a head cannot be imported")
    return out


def read_preprocessing(directory: Path, input_size: tuple[int, int]) -> tuple[Preprocessing, str]:
    path = directory / "preprocessor_config.json"
    if not path.is_file():
        return (
            Preprocessing(input_size, "exact", None, "bilinear", INCEPTION_MEAN, INCEPTION_STD),
            "ViTImageProcessor defaults",
        )
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    mean = tuple(cfg.get("image_mean", INCEPTION_MEAN))
    std = tuple(cfg.get("image_std", INCEPTION_STD))
    interpolation = PIL_FILTERS.get(int(cfg.get("resample", 2)), "bilinear")
    size = cfg.get("size") or {}
    if cfg.get("do_center_crop") and isinstance(size, dict):
        resize = int(size.get("shortest_edge") or size.get("height") or max(input_size))
        pre = Preprocessing(input_size, "shorter_side", max(resize, *input_size), interpolation, mean, std)
    else:
        pre = Preprocessing(input_size, "exact", None, interpolation, mean, std)
    return pre, "preprocessor_config.json"


def load(src: Path, heads: int | None = None) -> Converted:
    directory = Path(src)
    if directory.is_file() and directory.name == "config.json":
        directory = directory.parent
    if not directory.is_dir():
        raise CheckpointError(f"{src} is not a directory; the hf format reads a save_pretrained directory")
    hf = read_config(directory)
    raw, files = read_weights(directory)
    state = convert_state(raw)
    act = str(hf.get("hidden_act", "gelu"))
    if act not in GELU:
        raise CheckpointError(f"unsupported hidden_act {act!r}; supported: {sorted(GELU)}")
    size = hf.get("image_size", 224)
    image_size = (size, size) if isinstance(size, int) else tuple(size)
    config_heads = int(hf.get("num_attention_heads", 0)) or None
    if heads is not None and config_heads is not None and heads != config_heads:
        raise CheckpointError(f"--heads {heads} contradicts config.json (num_attention_heads={config_heads})")
    config = infer_config(
        state,
        heads=config_heads or heads,
        ln_eps=float(hf.get("layer_norm_eps", 1e-12)),
        gelu=GELU[act],
        image_size=image_size,  # type: ignore[arg-type]
    )
    id2label = hf.get("id2label") or {}
    labels = None
    if len(id2label) == config.num_classes:
        names = [str(id2label.get(str(i), id2label.get(i, f"class_{i}"))) for i in range(config.num_classes)]
        if not all(re.fullmatch(r"LABEL_\d+", n) for n in names):  # transformers' placeholder names
            labels = names
    preprocessing, origin = read_preprocessing(directory, config.image_size)
    return Converted(
        state=state,
        config=config,
        preprocessing=preprocessing,
        labels=labels,
        source={"weights_file": ", ".join(str(f) for f in files), "preprocessing_from": origin},
    )
