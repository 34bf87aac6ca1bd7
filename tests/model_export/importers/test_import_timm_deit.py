"""timm and DeiT checkpoints: key layout checks, refused variants, recorded preprocessing, and logits
against transformers' independent implementation of the same weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from model_export.importers import CheckpointError, load_foreign
from tests.model_export.importers.importer_helpers import random_vit, tiny_config

transformers = pytest.importorskip("transformers")


def hf_to_timm(hf_state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """The inverse of timm's convert_vit_timm_to_pytorch, written out independently of the importers."""
    s = {k.removeprefix("vit."): v for k, v in hf_state.items()}
    out = {
        "cls_token": s["embeddings.cls_token"],
        "pos_embed": s["embeddings.position_embeddings"],
        "patch_embed.proj.weight": s["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": s["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": s["layernorm.weight"],
        "norm.bias": s["layernorm.bias"],
        "head.weight": s["classifier.weight"],
        "head.bias": s["classifier.bias"],
    }
    for i in range(depth):
        hf, tm = f"layers.{i}.", f"blocks.{i}."
        for kind in ("weight", "bias"):
            out[tm + f"norm1.{kind}"] = s[hf + f"layernorm_before.{kind}"]
            out[tm + f"norm2.{kind}"] = s[hf + f"layernorm_after.{kind}"]
            out[tm + f"attn.qkv.{kind}"] = torch.cat([s[hf + f"attention.{n}_proj.{kind}"] for n in "qkv"])
            out[tm + f"attn.proj.{kind}"] = s[hf + f"attention.o_proj.{kind}"]
            out[tm + f"mlp.fc1.{kind}"] = s[hf + f"mlp.fc1.{kind}"]
            out[tm + f"mlp.fc2.{kind}"] = s[hf + f"mlp.fc2.{kind}"]
    return {k: v.clone() for k, v in out.items()}


def test_timm_pth_matches_transformers_on_the_same_weights(tmp_path):
    config = transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        image_size=32, patch_size=8, num_labels=6, layer_norm_eps=1e-6,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(config).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(0.05 * torch.randn_like(param))
    path = tmp_path / "vit_tiny_custom.pth"
    torch.save({"state_dict": hf_to_timm(hf.state_dict(), depth=2), "epoch": 3}, path)

    ours, info = load_foreign("timm", path, heads=4)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = hf(pixel_values=pixels).logits
        assert (ours(pixels) - expected).abs().max().item() <= 1e-4
    assert info.config.num_classes == 6 and info.config.ln_eps == 1e-6
    assert info.labels == [f"class_{i}" for i in range(6)]


def test_timm_safetensors_infers_heads_and_keeps_logits(tmp_path):
    source = random_vit(tiny_config(dim=192, heads=3, depth=1, mlp_dim=96, image_size=48, patch_size=16))
    path = tmp_path / "vit_tiny_patch16_48.augreg_in21k_ft_in1k.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))

    ours, info = load_foreign("timm", path)
    assert info.config.heads == 3  # from the width: DeiT-Ti / ViT-Ti
    pixels = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), source(pixels), rtol=0, atol=1e-5)
    pre = info.preprocessing  # AugReg name -> Google normalisation, timm's default eval crop
    assert pre.mean == (0.5, 0.5, 0.5) and pre.resize == "shorter_side"
    assert pre.resize_size == int(48 / 0.875) and pre.interpolation == "bicubic"
    assert load_foreign("timm", path, preprocessing="imagenet")[1].preprocessing.mean == (0.485, 0.456, 0.406)


def test_timm_hub_directory_uses_pretrained_cfg_and_old_pre_logits_names(tmp_path):
    source = random_vit(tiny_config(pre_logits_dim=24))
    state = {k.replace("pre_logits.0.", "pre_logits.fc."): v for k, v in source.state_dict().items()}
    (tmp_path / "hub").mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "hub" / "model.safetensors"))
    cfg = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "crop_pct": 0.9, "interpolation": "bilinear"}
    (tmp_path / "hub" / "config.json").write_text(
        json.dumps({"architecture": "vit_x", "pretrained_cfg": cfg})
    )

    ours, info = load_foreign("timm", tmp_path / "hub", heads=4)
    assert info.config.pre_logits_dim == 24
    assert info.preprocessing.resize_size == int(32 / 0.9) and info.preprocessing.interpolation == "bilinear"
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), source(pixels), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("extra", "feature"),
    [
        ({"fc_norm.weight": torch.ones(32), "fc_norm.bias": torch.zeros(32)}, "fc_norm"),
        ({"blocks.0.ls1.gamma": torch.ones(32)}, "LayerScale"),
        ({"reg_token": torch.zeros(1, 4, 32)}, "register tokens"),
    ],
)
def test_timm_variants_we_cannot_compute_are_refused_by_name(tmp_path, extra, feature):
    state = {**random_vit(tiny_config()).state_dict(), **extra}
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "v.safetensors"))
    with pytest.raises(CheckpointError, match=feature):
        load_foreign("timm", tmp_path / "v.safetensors", heads=4)


def test_distilled_deit_checkpoint_in_its_model_wrapper(tmp_path):
    source = random_vit(tiny_config(distilled=True, num_classes=7))
    path = tmp_path / "deit_tiny_distilled_patch16_224-b40b3cf7.pth"
    torch.save({"model": source.state_dict()}, path)

    ours, info = load_foreign("deit", path, heads=4)
    assert info.config.distilled and ours.head_dist is not None
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens, _ = source.forward_features(
            pixels
        )  # DeiT inference: mean of the class and distillation heads
        expected = (source.head(tokens[:, 0]) + source.head_dist(tokens[:, 1])) / 2
        torch.testing.assert_close(ours(pixels), expected, rtol=0, atol=1e-5)
    pre = info.preprocessing
    assert (pre.resize, pre.interpolation, pre.mean, pre.std) == (
        "shorter_side", "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
    )  # fmt: skip
    assert pre.resize_size == int(32 / 0.875)
