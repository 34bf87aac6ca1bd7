"""Loading at another resolution through the importer: 224 -> 384 with 2-D resampled position embeddings."""

from __future__ import annotations

import math

import torch
from safetensors.torch import save_file

from model_export.checkpoint import load_checkpoint
from model_export.importers import import_checkpoint, load_foreign
from model_export.pos_embed import resample_abs_pos_embed
from tests.model_export.importers.importer_helpers import random_vit, tiny_config


def smooth_source(tmp_path):
    """A 224 px ViT whose position embeddings vary smoothly over the grid, as trained ones do."""
    model = random_vit(tiny_config(image_size=224, patch_size=16, dim=32, heads=4, depth=2))
    grid = torch.linspace(0, 1, 14)
    y, x = torch.meshgrid(grid, grid, indexing="ij")
    freqs = torch.arange(1, 33).float() / 16
    smooth = torch.sin(math.pi * (x.reshape(-1, 1) * freqs + y.reshape(-1, 1) * freqs.flip(0)))
    with torch.no_grad():
        model.pos_embed[0, 1:] = 0.5 * smooth
    path = tmp_path / "smooth_224.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


def smooth_image(size: int) -> torch.Tensor:
    axis = torch.linspace(0, 1, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    channels = [torch.sin(math.pi * x) * 0.3, torch.cos(math.pi * y) * 0.3, (x * y) * 0.3]
    return torch.stack(channels).unsqueeze(0)


def test_import_at_384_resamples_position_embeddings_and_keeps_outputs_close(tmp_path):
    source, path = smooth_source(tmp_path)
    out = import_checkpoint("timm", path, tmp_path / "vit384", heads=4, image_size=384)
    model, info = load_checkpoint(out)
    assert info.config.image_size == (384, 384)
    assert info.source["trained_image_size"] == [224, 224]
    assert info.preprocessing.input_size == (384, 384) and info.preprocessing.resize_size == int(384 / 0.875)
    expected_pos = resample_abs_pos_embed(source.pos_embed.detach(), new_grid=(24, 24))
    torch.testing.assert_close(model.pos_embed.detach(), expected_pos)

    with torch.no_grad():
        reference = source(smooth_image(224))
        resampled = model(smooth_image(384))
    cosine = torch.nn.functional.cosine_similarity(reference, resampled).item()
    assert cosine > 0.98
    assert (resampled - reference).norm() < 0.25 * reference.norm()


def test_non_square_size_from_the_api(tmp_path):
    _, path = smooth_source(tmp_path)
    model, info = load_foreign("timm", path, heads=4, image_size="224,320")
    assert model.pos_embed.shape == (1, 1 + 14 * 20, 32)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 320)).shape == (1, 5)
    assert info.preprocessing.input_size == (224, 320)
