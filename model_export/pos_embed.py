"""Position-embedding resampling for fine-tuning at another resolution (paper, Section 3.2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def resample_abs_pos_embed(
    pos_embed: Tensor,
    new_grid: tuple[int, int],
    num_prefix_tokens: int = 1,
    old_grid: tuple[int, int] | None = None,
    interpolation: str = "bicubic",
) -> Tensor:
    """Interpolate [1, prefix + h*w, dim] embeddings to a new patch grid in 2-D.

    The [CLS] (and distillation) embeddings have no position and are kept apart unchanged.
    ``old_grid`` defaults to a square grid, which is what every published checkpoint uses.
    """
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    count = patches.shape[1]
    if old_grid is None:
        side = math.isqrt(count)
        if side * side != count:
            raise ValueError(f"cannot infer a square grid from {count} position embeddings")
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != count:
        raise ValueError(f"grid {old_grid} does not match {count} position embeddings")
    new_grid = (int(new_grid[0]), int(new_grid[1]))
    if tuple(old_grid) == new_grid:
        return pos_embed
    dim = patches.shape[-1]
    dtype = patches.dtype
    grid = patches.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_grid, mode=interpolation, align_corners=False)
    patches = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(dtype)
    return torch.cat([prefix, patches], dim=1)
