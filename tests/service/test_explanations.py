import numpy as np

from service.explanations import ExplanationCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry_args(value: float):
    return np.full((2, 2), value), "cat", 0, np.zeros((4, 4, 3), np.uint8)


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = ExplanationCache(max_entries=10, ttl_s=60, clock=clock)
    entry = cache.put(*entry_args(0.25))
    clock.now = 59
    assert cache.get(entry.id) is entry
    clock.now = 61
    assert cache.get(entry.id) is None
    assert len(cache) == 0


def test_oldest_entries_are_evicted_beyond_the_bound():
    cache = ExplanationCache(max_entries=3, ttl_s=60, clock=Clock())
    ids = [cache.put(*entry_args(i)).id for i in range(5)]
    assert len(set(ids)) == 5
    assert [cache.get(i) is not None for i in ids] == [False, False, True, True, True]
    assert len(cache) == 3
