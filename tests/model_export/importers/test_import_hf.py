"""transformers ViTForImageClassification -> our ViT: same logits and attention on the same inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model_export.checkpoint import load_checkpoint
from model_export.importers import CheckpointError, import_checkpoint, load_foreign
from model_export.importers.labels import imagenet1k_labels
from model_export.pos_embed import resample_abs_pos_embed
from tests.model_export.importers.importer_helpers import preprocess

transformers = pytest.importorskip("transformers")


def hf_model(tmp_path, **config):
    hf_config = transformers.ViTConfig(**config)
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification._from_config(hf_config, attn_implementation="eager")
    with torch.no_grad():  # non-trivial LayerNorms so a mixed-up norm shows
        for name, param in model.named_parameters():
            if "layernorm" in name:
                param.add_(0.1 * torch.randn_like(param))
    model.eval().save_pretrained(tmp_path / "hf")
    return model


def assert_parity(hf, ours, pixels):
    with torch.no_grad():
        expected = hf(pixel_values=pixels, output_attentions=True)
        logits, attentions = ours.forward_with_attention(pixels)
        fused = ours(pixels)
    assert (logits - expected.logits).abs().max().item() <= 1e-4
    assert (fused - expected.logits).abs().max().item() <= 1e-4
    assert len(attentions) == len(expected.attentions)
    for mine, theirs in zip(attentions, expected.attentions, strict=True):
        assert (mine - theirs).abs().max().item() <= 1e-5


def test_small_hf_model_matches_transformers(tmp_path):
    labels = {i: name for i, name in enumerate(["ant", "bee", "cat"])}
    hf = hf_model(
        tmp_path,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    ours, info = load_foreign("hf", tmp_path / "hf")
    assert info.config.ln_eps == 1e-12 and info.config.heads == 4 and info.config.gelu == "exact"
    assert info.labels == ["ant", "bee", "cat"]
    pre = info.preprocessing
    assert (pre.resize, pre.interpolation, pre.mean, pre.std) == ("exact", "bilinear", (0.5,) * 3, (0.5,) * 3)
    torch.manual_seed(1)
    assert_parity(hf, ours, torch.randn(2, 3, 32, 32))


def test_written_directory_reloads_with_the_same_outputs(tmp_path):
    hf = hf_model(
        tmp_path, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
        image_size=[32, 48], patch_size=16, num_labels=4, hidden_act="gelu_pytorch_tanh",
    )  # fmt: skip
    out = import_checkpoint("hf", tmp_path / "hf", tmp_path / "out")
    ours, info = load_checkpoint(out)
    assert info.config.image_size == (32, 48) and info.config.gelu == "tanh"
    assert info.labels == [f"class_{i}" for i in range(4)]  # transformers' LABEL_i placeholders are not names
    assert json.loads((out / "model.json").read_text())["source"]["format"] == "hf"
    torch.manual_seed(2)
    assert_parity(hf, ours, torch.randn(1, 3, 32, 48))

    larger, _ = load_foreign("hf", tmp_path / "hf", image_size=(48, 64))  # a 2x3 grid becomes 3x4
    expected = resample_abs_pos_embed(ours.pos_embed.detach(), (3, 4), old_grid=(2, 3))
    torch.testing.assert_close(larger.pos_embed.detach(), expected)


@pytest.mark.slow
def test_vit_b16_shape_matches_transformers(tmp_path):
    hf = hf_model(tmp_path, num_labels=1000)  # transformers' defaults are ViT-B/16 at 224 px
    ours, info = load_foreign("hf", tmp_path / "hf")
    assert ours.num_params() == 86_567_656
    assert info.labels == list(imagenet1k_labels())
    torch.manual_seed(3)
    assert_parity(hf, ours, torch.randn(1, 3, 224, 224))


def test_other_model_types_are_refused(tmp_path):
    hf_model(tmp_path, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
             image_size=32, patch_size=8, num_labels=2)  # fmt: skip
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    config["model_type"] = "deit"
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model_type 'deit'"):
        load_foreign("hf", tmp_path / "hf")


def test_preprocessor_config_and_sharded_weights(tmp_path):
    hf = hf_model(tmp_path, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  image_size=32, patch_size=8, num_labels=3)  # fmt: skip
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    processor = transformers.ViTImageProcessorPil(
        resample=3, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
        size={"height": 32, "width": 32},
    )  # fmt: skip
    processor.save_pretrained(tmp_path / "sharded")

    ours, info = load_foreign("hf", tmp_path / "sharded")
    pre = info.preprocessing
    assert (pre.resize, pre.interpolation, pre.mean) == ("exact", "bicubic", (0.485, 0.456, 0.406))
    photo = (np.random.default_rng(0).random((45, 60, 3)) * 255).astype(np.uint8)
    theirs = processor(images=photo, return_tensors="pt")["pixel_values"]
    mine = preprocess(photo, pre)
    assert (mine - theirs).abs().max().item() <= 1e-5  # the recorded recipe is what transformers does
    with torch.no_grad():
        assert (ours(mine) - hf(pixel_values=mine).logits).abs().max().item() <= 1e-4
