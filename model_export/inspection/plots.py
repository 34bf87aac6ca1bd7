"""Figure 7's three panels as PNG files (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _grid_shape(count: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(count * 2))  # wider than tall, as in the paper
    return math.ceil(count / cols), cols


def plot_components(components: np.ndarray, path: Path) -> Path:
    """Principal components [k, C, P, P] as RGB filters, each scaled to [0, 1] on its own."""
    rows, cols = _grid_shape(len(components))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9 + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, comp in zip(axes.ravel(), components, strict=False):
        image = np.moveaxis(comp, 0, -1)
        if image.shape[-1] != 3:
            image = image.mean(axis=-1)
        low, high = image.min(), image.max()
        ax.imshow((image - low) / (high - low) if high > low else np.zeros_like(image), cmap="gray")
    fig.suptitle("RGB embedding filters (first principal components)", fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_position_similarity(similarity: np.ndarray, path: Path) -> Path:
    """similarity [gh, gw, gh, gw]: a gh × gw grid of tiles, tile (r, c) is patch (r, c)'s map."""
    gh, gw = similarity.shape[:2]
    fig, axes = plt.subplots(gh, gw, figsize=(gw * 0.5 + 1, gh * 0.5 + 0.4), squeeze=False)
    image = None
    for r in range(gh):
        for c in range(gw):
            ax = axes[r, c]
            image = ax.imshow(similarity[r, c], vmin=-1, vmax=1, cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="cosine similarity")
    fig.suptitle("Position embedding similarity", fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_attention_distance(distance: np.ndarray, path: Path, image_size: int) -> Path:
    """distance [layers, heads]: one dot per head at each depth."""
    layers, heads = distance.shape
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for head in range(heads):
        ax.scatter(np.arange(1, layers + 1), distance[:, head], s=12, label=f"head {head + 1}")
    ax.set_xlabel("network depth (layer)")
    ax.set_ylabel("mean attention distance (pixels)")
    ax.set_ylim(0, image_size)
    ax.set_title("Mean attention distance per head", fontsize=9)
    if heads <= 16:
        ax.legend(fontsize=6, ncol=2, loc="lower right")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
