"""Attention rollout (Abnar & Zuidema 2020), as the ViT paper's appendix uses it.

Per layer: average the attention over heads, add the identity for the residual path and
re-normalise rows; multiply through the layers; read the [CLS] row over the patch grid.
Only the [CLS] row is needed, so it is carried as a vector through the layers (last to first),
which costs T² per layer instead of the T³ of full matrix products.
"""

from __future__ import annotations

import torch
from torch import Tensor


def residual_attention(probs: Tensor) -> Tensor:
    """[N, heads, T, T] probabilities -> [N, T, T] head-averaged, identity-added, row-normalised."""
    mean = probs.mean(dim=1)
    eye = torch.eye(mean.shape[-1], dtype=mean.dtype, device=mean.device)
    augmented = mean + eye
    return augmented / augmented.sum(dim=-1, keepdim=True)


def cls_rollout(attentions: list[Tensor], num_prefix_tokens: int, grid: tuple[int, int]) -> Tensor:
    """The [CLS] row of A_L · … · A_1 over the patch grid: [N, grid_h, grid_w], unscaled."""
    if not attentions:
        raise ValueError("rollout needs at least one layer's attention")
    row = residual_attention(attentions[-1])[:, 0, :]  # e_cls^T · A_L: [N, T]
    for probs in reversed(attentions[:-1]):
        row = torch.einsum("nt,nts->ns", row, residual_attention(probs))
    return row[:, num_prefix_tokens:].reshape(row.shape[0], grid[0], grid[1])
