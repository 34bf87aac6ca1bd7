"""Google .npz: random Flax-layout parameters, imported, against a plain NumPy forward pass that uses the
per-head Flax kernels as stored (no reshaping), so a wrong q/k/v or output reshape cannot cancel out."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model_export.importers import CheckpointError, load_foreign

DIM, HEADS, HEAD_DIM, MLP, DEPTH, PATCH, SIZE, CLASSES, REPR = 24, 3, 8, 40, 2, 8, 32, 5, 16


def flax_params(seed: int = 0, pre_logits: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def r(*shape, scale=0.2):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    tokens = (SIZE // PATCH) ** 2 + 1
    p = {
        "embedding/kernel": r(PATCH, PATCH, 3, DIM),  # HWIO
        "embedding/bias": r(DIM),
        "cls": r(1, 1, DIM),
        "Transformer/posembed_input/pos_embedding": r(1, tokens, DIM),
        "Transformer/encoder_norm/scale": 1 + r(DIM),
        "Transformer/encoder_norm/bias": r(DIM),
        "head/kernel": r(REPR if pre_logits else DIM, CLASSES),
        "head/bias": r(CLASSES),
    }
    if pre_logits:
        p["pre_logits/kernel"], p["pre_logits/bias"] = r(DIM, REPR), r(REPR)
    for i in range(DEPTH):
        b = f"Transformer/encoderblock_{i}/"
        mha = b + "MultiHeadDotProductAttention_1/"
        for n in ("query", "key", "value"):
            p[f"{mha}{n}/kernel"], p[f"{mha}{n}/bias"] = r(DIM, HEADS, HEAD_DIM), r(HEADS, HEAD_DIM)
        p[f"{mha}out/kernel"], p[f"{mha}out/bias"] = r(HEADS, HEAD_DIM, DIM), r(DIM)
        for ln in ("LayerNorm_0", "LayerNorm_2"):
            p[f"{b}{ln}/scale"], p[f"{b}{ln}/bias"] = 1 + r(DIM), r(DIM)
        p[f"{b}MlpBlock_3/Dense_0/kernel"], p[f"{b}MlpBlock_3/Dense_0/bias"] = r(DIM, MLP), r(MLP)
        p[f"{b}MlpBlock_3/Dense_1/kernel"], p[f"{b}MlpBlock_3/Dense_1/bias"] = r(MLP, DIM), r(DIM)
    return p


def layer_norm(x, scale, bias, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def gelu_tanh(x):  # flax.linen.gelu's default (approximate=True)
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def flax_forward(p, images_nhwc):
    """The ViT of google-research/vision_transformer, in NumPy float64."""
    p = {k: v.astype(np.float64) for k, v in p.items()}
    n, h, _, c = images_nhwc.shape
    g = h // PATCH
    patches = images_nhwc.reshape(n, g, PATCH, g, PATCH, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, g * g, -1)
    x = patches @ p["embedding/kernel"].reshape(-1, DIM) + p["embedding/bias"]
    x = np.concatenate([np.repeat(p["cls"], n, axis=0), x], axis=1)
    x = x + p["Transformer/posembed_input/pos_embedding"]
    probs_per_layer = []
    for i in range(DEPTH):
        b = f"Transformer/encoderblock_{i}/"
        mha = b + "MultiHeadDotProductAttention_1/"
        y = layer_norm(x, p[b + "LayerNorm_0/scale"], p[b + "LayerNorm_0/bias"])
        q, k, v = (
            np.einsum("ntd,dhk->nthk", y, p[f"{mha}{name}/kernel"]) + p[f"{mha}{name}/bias"]
            for name in ("query", "key", "value")
        )
        scores = np.einsum("nqhk,nphk->nhqp", q / math.sqrt(HEAD_DIM), k)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        probs_per_layer.append(probs)
        attended = np.einsum("nhqp,nphk->nqhk", probs, v)
        x = x + np.einsum("nqhk,hkd->nqd", attended, p[mha + "out/kernel"]) + p[mha + "out/bias"]
        y = layer_norm(x, p[b + "LayerNorm_2/scale"], p[b + "LayerNorm_2/bias"])
        y = gelu_tanh(y @ p[b + "MlpBlock_3/Dense_0/kernel"] + p[b + "MlpBlock_3/Dense_0/bias"])
        x = x + y @ p[b + "MlpBlock_3/Dense_1/kernel"] + p[b + "MlpBlock_3/Dense_1/bias"]
    x = layer_norm(x, p["Transformer/encoder_norm/scale"], p["Transformer/encoder_norm/bias"])[:, 0]
    if "pre_logits/kernel" in p:
        x = np.tanh(x @ p["pre_logits/kernel"] + p["pre_logits/bias"])
    return x @ p["head/kernel"] + p["head/bias"], probs_per_layer


@pytest.mark.parametrize("pre_logits", [True, False])
def test_npz_matches_a_numpy_flax_forward(tmp_path, pre_logits):
    params = flax_params(pre_logits=pre_logits)
    np.savez(tmp_path / "ViT-T_8.npz", **params)
    ours, info = load_foreign("npz", tmp_path / "ViT-T_8.npz")
    c = info.config
    assert (c.dim, c.heads, c.depth, c.mlp_dim, c.patch_size, c.image_size) == (
        DIM, HEADS, DEPTH, MLP, PATCH, (SIZE, SIZE),
    )  # fmt: skip
    assert c.gelu == "tanh" and c.pre_logits_dim == (REPR if pre_logits else None)
    pre = info.preprocessing
    assert (pre.resize, pre.interpolation, pre.mean, pre.std) == ("exact", "bilinear", (0.5,) * 3, (0.5,) * 3)

    images = np.random.default_rng(1).standard_normal((2, SIZE, SIZE, 3))
    expected_logits, expected_probs = flax_forward(params, images)
    with torch.no_grad():
        logits, probs = ours.forward_with_attention(torch.from_numpy(images).permute(0, 3, 1, 2).float())
    np.testing.assert_allclose(logits.numpy(), expected_logits, atol=1e-4, rtol=0)
    for mine, theirs in zip(probs, expected_probs, strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs, atol=1e-5, rtol=0)


def test_npz_with_a_foreign_extra_array_is_refused(tmp_path):
    params = flax_params()
    params["Transformer/encoderblock_0/LayerScale/scale"] = np.ones(DIM, np.float32)
    np.savez(tmp_path / "odd.npz", **params)
    with pytest.raises(CheckpointError, match="LayerScale"):
        load_foreign("npz", tmp_path / "odd.npz")


def test_npz_gap_models_are_refused(tmp_path):
    params = flax_params()
    del params["cls"]
    np.savez(tmp_path / "gap.npz", **params)
    with pytest.raises(CheckpointError, match="no 'cls' token"):
        load_foreign("npz", tmp_path / "gap.npz")
