"""A bounded, expiring store of recent rollouts, so ``/classify?explain=true`` can hand out a link.

Entries hold the [CLS] rollout map and the model's input pixels (for the PNG heatmap, so memory per
entry is bounded by the input size, not the upload's); the oldest entry goes first when full, and any
entry older than the TTL reads as missing (→ 404).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Explanation:
    id: str
    rollout: np.ndarray  # [grid_h, grid_w], the unscaled [CLS] row
    label: str
    index: int
    pixels: np.ndarray  # [H, W, 3] uint8, the preprocessed image
    created: float


class ExplanationCache:
    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[str, Explanation] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._entries)

    def put(self, rollout: np.ndarray, label: str, index: int, pixels: np.ndarray) -> Explanation:
        entry = Explanation(secrets.token_urlsafe(12), rollout, label, index, pixels, self.clock())
        with self._lock:
            self._expire()
            self._entries[entry.id] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry

    def get(self, entry_id: str) -> Explanation | None:
        with self._lock:
            self._expire()
            return self._entries.get(entry_id)

    def _expire(self) -> None:
        cutoff = self.clock() - self.ttl_s
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.created > cutoff:
                break
            self._entries.popitem(last=False)
