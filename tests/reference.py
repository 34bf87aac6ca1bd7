"""Plain NumPy references that tests compare the real implementations against."""

from __future__ import annotations

import numpy as np


def numpy_rollout(attentions: list[np.ndarray], num_prefix_tokens: int, grid: tuple[int, int]) -> np.ndarray:
    """Abnar & Zuidema rollout with full matrix products, in float64.

    attentions: per layer [N, heads, T, T]. Returns the [CLS] row over the patch grid [N, h, w].
    """
    batch = attentions[0].shape[0]
    maps = []
    for n in range(batch):
        rollout = None
        for layer in attentions:
            a = layer[n].astype(np.float64).mean(axis=0)
            a = a + np.eye(a.shape[0])
            a = a / a.sum(axis=-1, keepdims=True)
            rollout = a if rollout is None else a @ rollout
        maps.append(rollout[0, num_prefix_tokens:].reshape(grid))
    return np.stack(maps)
