"""``vit-export inspect``: compute Figure 7's quantities for a bundle and write them as PNG + JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_export.checkpoint import load_checkpoint
from model_export.export import archive
from model_export.export.evaluation import sample_photos
from model_export.export.graphs import PixelNormalize
from model_export.export.provenance import read_json
from model_export.inspection import figures, plots
from model_export.model import ViT
from service.bundle import Manifest, Preprocessing


def inspection_images(root: Path, manifest: Manifest, count: int) -> tuple[np.ndarray, str]:
    """A handful of real images: the run's test split when the bundle records one, else sample photos."""
    config = read_json(root / "training" / "config.json")
    if config:
        try:
            from model_export.training.data import load_eval_arrays

            images, _ = load_eval_arrays(config, "test", limit=count)
            return images, f"{len(images)} test images of {config.get('dataset')}"
        except Exception as exc:  # dataset not on this machine: fall back to photos, say so
            note = f" (test split unavailable: {type(exc).__name__})"
    else:
        note = ""
    photos = sample_photos(manifest.preprocessing, count)
    return photos, f"{len(photos)} scikit-image sample photos{note}"


@torch.no_grad()
def attention_probabilities(model: ViT, preprocessing: Preprocessing, pixels: np.ndarray) -> list[np.ndarray]:
    x = PixelNormalize(preprocessing)(torch.from_numpy(pixels))
    _, attentions = model.forward_with_attention(x)
    return [a.numpy() for a in attentions]


def inspect_bundle(bundle: Path, out: Path, components: int = 28, images: int = 6) -> dict[str, Any]:
    """Write embedding_filters.png, position_similarity.png, attention_distance.png and inspection.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with archive.opened(Path(bundle)) as root:
        manifest = Manifest.read(root)
        manifest.verify_files(root)
        model, info = load_checkpoint(root)
        pixels, image_note = inspection_images(root, manifest, images)
    config = model.config
    weight = model.patch_embed.proj.weight.detach().numpy()
    comps, explained = figures.patch_embedding_components(weight, components)
    similarity = figures.position_similarity(
        model.pos_embed.detach()[0].numpy(), config.num_prefix_tokens, config.grid_size
    )
    attentions = attention_probabilities(model, info.preprocessing, pixels)
    distance = figures.mean_attention_distance(
        attentions, config.num_prefix_tokens, config.grid_size, config.patch_size
    )
    plots.plot_components(comps, out / "embedding_filters.png")
    plots.plot_position_similarity(similarity, out / "position_similarity.png")
    plots.plot_attention_distance(distance, out / "attention_distance.png", max(config.image_size))
    result = {
        "bundle": {"name": manifest.name, "version": manifest.version},
        "embedding_filters": {
            "components": len(comps),
            "explained_variance_ratio": explained.tolist(),
            "image": "embedding_filters.png",
        },
        "position_similarity": {
            "grid": list(config.grid_size),
            "similarity": similarity.round(5).tolist(),
            "image": "position_similarity.png",
        },
        "attention_distance": {
            "images": image_note,
            "unit": "pixels",
            "mean_distance": distance.round(4).tolist(),  # [layer][head]
            "image": "attention_distance.png",
        },
    }
    (out / "inspection.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
