"""The numbers behind Figure 7 of the ViT paper, as small NumPy functions.

Left: principal components of the patch-embedding filters. Centre: cosine similarity between position
embeddings. Right: mean attention distance ("attention distance", analogous to receptive-field size in
CNNs) per head against depth.
"""

from __future__ import annotations

import numpy as np


def patch_embedding_components(weight: np.ndarray, count: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """weight [dim, C, P, P] -> (components [k, C, P, P] orthonormal, explained variance ratio [k]).

    Each of the ``dim`` filters is a sample in C·P·P dimensions; the components are the principal
    directions of those samples (SVD of the centred filter matrix).
    """
    dim = weight.shape[0]
    flat = weight.reshape(dim, -1).astype(np.float64)
    centred = flat - flat.mean(axis=0, keepdims=True)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(count, vt.shape[0])
    variance = singular**2
    ratio = variance[:k] / variance.sum() if variance.sum() > 0 else np.zeros(k)
    return vt[:k].reshape(k, *weight.shape[1:]), ratio


def position_similarity(pos_embed: np.ndarray, num_prefix_tokens: int, grid: tuple[int, int]) -> np.ndarray:
    """pos_embed [T, dim] -> cosine similarity [gh, gw, gh, gw]: entry (r, c) is patch (r, c)'s map."""
    patches = pos_embed[num_prefix_tokens:].astype(np.float64)
    unit = patches / np.linalg.norm(patches, axis=1, keepdims=True).clip(min=1e-12)
    similarity = unit @ unit.T
    return similarity.reshape(grid[0], grid[1], grid[0], grid[1])


def patch_distances(grid: tuple[int, int], patch_size: int) -> np.ndarray:
    """Pixel distance between the centres of every pair of patches: [P, P] for P = gh·gw patches."""
    rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    centres = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64) * patch_size
    return np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=-1)


def mean_attention_distance(
    attentions: list[np.ndarray], num_prefix_tokens: int, grid: tuple[int, int], patch_size: int
) -> np.ndarray:
    """Per layer and head: Σ_j a_ij ‖pos_i − pos_j‖ in pixels over patch queries i and keys j,
    averaged over query patches and images -> [layers, heads].

    Each query's attention to the patches is renormalised to sum to 1 (the share it gives to the prefix
    tokens has no position), so a uniform map gives the grid's mean pairwise distance.
    """
    distances = patch_distances(grid, patch_size)
    result = []
    for probs in attentions:
        patch = probs[:, :, num_prefix_tokens:, num_prefix_tokens:].astype(np.float64)
        patch = patch / patch.sum(axis=-1, keepdims=True).clip(min=1e-12)
        per_query = (patch * distances).sum(axis=-1)  # [N, heads, queries]
        result.append(per_query.mean(axis=(0, 2)))
    return np.stack(result)
