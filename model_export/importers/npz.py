"""Google's original JAX/Flax ViT checkpoints (``ViT-B_16.npz`` ..., google-research/vision_transformer).

Flax stores a Dense kernel as [in, out] (we need [out, in]), the patch convolution as HWIO (we need
OIHW), and attention per head: query/key/value kernels [dim, heads, head_dim] with biases
[heads, head_dim], and the output kernel [heads, head_dim, dim]. The head count is therefore read from
the weights. Flax's ``nn.gelu`` is the tanh approximation and its LayerNorm eps is 1e-6, so the
imported config says so. Preprocessing follows Google's input pipeline: resize straight to the input
size (bilinear), pixels to [-1, 1] (mean = std = 0.5). Only ``classifier='token'`` ViTs without a ResNet
stem are supported; anything else is refused with the keys that show it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from model_export.importers.common import (
    INCEPTION_MEAN,
    INCEPTION_STD,
    CheckpointError,
    Converted,
    infer_config,
    refuse_leftovers,
)
from service.bundle import Preprocessing

PREFIXES = ("", "opt/target/", "params/")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path} is not a readable .npz archive (truncated?): {exc}") from exc
    for prefix in PREFIXES:
        if f"{prefix}embedding/kernel" in arrays:
            return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
    raise CheckpointError(
        f"{path} is not a Google ViT checkpoint: no 'embedding/kernel' (keys: {sorted(arrays)[:6]})"
    )


def convert_arrays(arrays: dict[str, np.ndarray]) -> tuple[dict[str, Tensor], int]:
    """Flax names and layouts -> ours; returns the state dict and the head count."""
    w = dict(arrays)
    for marker, feature in (
        ("conv_root/kernel", "a ResNet (hybrid) stem"),
        ("MAPHead_0/probe", "a MAP head"),
    ):
        if any(marker in k for k in w):
            raise CheckpointError(f"unsupported Google ViT variant: {feature}")
    if "cls" not in w:
        raise CheckpointError("unsupported Google ViT variant: no 'cls' token (classifier='gap')")
    if "Transformer/posembed_input/pos_embedding" not in w:
        raise CheckpointError("unsupported Google ViT layout: no 'Transformer/posembed_input/pos_embedding'")

    def take(name: str) -> np.ndarray:
        if name not in w:
            raise CheckpointError(f"checkpoint is missing key {name!r}")
        return w.pop(name)

    def dense(name: str) -> tuple[np.ndarray, np.ndarray]:  # [in, out] -> [out, in]
        return take(f"{name}/kernel").T, take(f"{name}/bias")

    def layer_norm(name: str) -> tuple[np.ndarray, np.ndarray]:
        return take(f"{name}/scale"), take(f"{name}/bias")

    out: dict[str, np.ndarray] = {
        "patch_embed.proj.weight": take("embedding/kernel").transpose(3, 2, 0, 1),  # HWIO -> OIHW
        "patch_embed.proj.bias": take("embedding/bias"),
        "cls_token": take("cls"),
        "pos_embed": take("Transformer/posembed_input/pos_embedding"),
    }
    heads = None
    depth = 0
    while f"Transformer/encoderblock_{depth}/LayerNorm_0/scale" in w:
        block = f"Transformer/encoderblock_{depth}/"
        mha = block + "MultiHeadDotProductAttention_1/"
        ours = f"blocks.{depth}."
        out[ours + "norm1.weight"], out[ours + "norm1.bias"] = layer_norm(block + "LayerNorm_0")
        kernels = [take(f"{mha}{n}/kernel") for n in ("query", "key", "value")]  # [dim, heads, head_dim]
        dim, heads = kernels[0].shape[0], kernels[0].shape[1]
        out[ours + "attn.qkv.weight"] = np.concatenate([k.reshape(dim, -1).T for k in kernels])
        if f"{mha}query/bias" in w:
            out[ours + "attn.qkv.bias"] = np.concatenate(
                [take(f"{mha}{n}/bias").reshape(-1) for n in ("query", "key", "value")]
            )
        out_kernel = take(f"{mha}out/kernel")  # [heads, head_dim, dim]
        out[ours + "attn.proj.weight"] = out_kernel.reshape(-1, out_kernel.shape[-1]).T
        out[ours + "attn.proj.bias"] = take(f"{mha}out/bias")
        out[ours + "norm2.weight"], out[ours + "norm2.bias"] = layer_norm(block + "LayerNorm_2")
        out[ours + "mlp.fc1.weight"], out[ours + "mlp.fc1.bias"] = dense(block + "MlpBlock_3/Dense_0")
        out[ours + "mlp.fc2.weight"], out[ours + "mlp.fc2.bias"] = dense(block + "MlpBlock_3/Dense_1")
        depth += 1
    if depth == 0:
        raise CheckpointError(
            "no 'Transformer/encoderblock_0/...' weights: not a classic Google ViT checkpoint"
        )
    out["norm.weight"], out["norm.bias"] = layer_norm("Transformer/encoder_norm")
    if "pre_logits/kernel" in w:
        out["pre_logits.0.weight"], out["pre_logits.0.bias"] = dense("pre_logits")
    if "head/kernel" not in w:
        raise CheckpointError("the checkpoint has no classification head ('head/kernel')")
    out["head.weight"], out["head.bias"] = dense("head")
    refuse_leftovers(list(w), "Google .npz")
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}
    return state, int(heads)  # type: ignore[arg-type]


def load(src: Path, heads: int | None = None) -> Converted:
    stored, stored_heads = convert_arrays(read_npz(Path(src)))
    if heads is not None and heads != stored_heads:
        raise CheckpointError(f"--heads {heads} contradicts the checkpoint, which has {stored_heads} heads")
    config = infer_config(stored, heads=stored_heads, ln_eps=1e-6, gelu="tanh")
    preprocessing = Preprocessing(
        input_size=config.image_size,
        resize="exact",
        interpolation="bilinear",
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
    )
    return Converted(
        state=stored,
        config=config,
        preprocessing=preprocessing,
        source={"weights_file": str(src), "preprocessing_from": "Google ViT input pipeline"},
    )
