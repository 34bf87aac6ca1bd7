"""A plain NumPy attention rollout, the yardstick the exported rollout is measured against.

Full matrix products in float64 (Abnar & Zuidema 2020), deliberately a different algorithm from the
vector–matrix chain inside the graph, so agreement means something.
"""

from __future__ import annotations

import numpy as np


def numpy_rollout(attentions: list[np.ndarray], num_prefix_tokens: int, grid: tuple[int, int]) -> np.ndarray:
    """attentions: per layer [N, heads, T, T] -> the [CLS] row of A_L···A_1 over the patch grid [N, h, w]."""
    maps = []
    for n in range(attentions[0].shape[0]):
        rollout = None
        for layer in attentions:
            a = layer[n].astype(np.float64).mean(axis=0)
            a = a + np.eye(a.shape[0])
            a = a / a.sum(axis=-1, keepdims=True)
            rollout = a if rollout is None else a @ rollout
        assert rollout is not None
        maps.append(rollout[0, num_prefix_tokens:].reshape(grid))
    return np.stack(maps)
