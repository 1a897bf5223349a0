"""Bounded in-memory state of a worker: recently seen keys, and features waiting for a label.

Both structures have a hard capacity, so a long stream cannot grow them without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class RecentKeys:
    """The last ``capacity`` distinct keys seen (first-in, first-out).

    >>> seen = RecentKeys(2)
    >>> [seen.add(k) for k in ("a", "b", "a", "c", "a")]
    [True, True, False, True, True]
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; ``False`` if it was already remembered."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return True

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._keys)


class TTLStore(Generic[V]):
    """A key → value table whose entries expire ``ttl`` seconds after they were put.

    Entries are evicted oldest first, on expiry or when ``capacity`` is exceeded; ``expired``
    counts the evictions (labels that came too late, or never).

    >>> t = TTLStore(ttl=10, capacity=2)
    >>> t.put("a", 1, now=0); t.put("b", 2, now=5)
    >>> t.pop("a", now=9), t.pop("a", now=9)
    (1, None)
    >>> t.put("c", 3, now=6); t.pop("b", now=15.5), t.expired
    (None, 1)
    """

    def __init__(self, ttl: float, capacity: int):
        self.ttl = ttl
        self.capacity = capacity
        self.expired = 0
        self._items: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: Hashable, value: V, now: float) -> None:
        self._items.pop(key, None)
        self._items[key] = (now, value)
        self.evict(now)

    def pop(self, key: Hashable, now: float) -> V | None:
        """Remove and return the value of ``key`` if it is there and fresh."""
        self.evict(now)
        item = self._items.pop(key, None)
        return None if item is None else item[1]

    def evict(self, now: float) -> None:
        items = self._items
        limit = now - self.ttl
        while items:
            _key, (t, _) = next(iter(items.items()))
            if t > limit and len(items) <= self.capacity:
                break
            items.popitem(last=False)
            self.expired += 1


class HeavyHitters:
    """Which keys of an unbounded stream (campaigns, hashtags) get state of their own: all of them
    while fewer than ``capacity`` distinct keys have been seen; once more have come (a flood of
    one-off keys), only those seen at least ``threshold`` times, counted with the Misra-Gries
    algorithm in at most ``capacity`` counters (a key's count never exceeds its true count, so an
    admitted key was really seen that often).

    >>> hh = HeavyHitters(capacity=2, threshold=2)
    >>> [hh.admit(k) for k in ("a", "b", "a")]  # room for every key so far
    [True, True, True]
    >>> [hh.admit(k) for k in ("c", "d", "a", "a", "e", "a")]  # a flood: one-off keys are refused
    [False, False, True, True, False, True]
    >>> hh.saturated, len(hh.counts) <= 2
    (True, True)
    """

    def __init__(self, capacity: int, threshold: int):
        self.capacity = capacity
        self.threshold = threshold
        self.counts: dict[str, int] = {}
        self.saturated = False  # more distinct keys than capacity have come

    def admit(self, key: str) -> bool:
        counts = self.counts
        n = counts.get(key)
        if n is not None:
            counts[key] = n = n + 1
        elif len(counts) < self.capacity:
            counts[key] = n = 1
        else:  # full: every counter loses one, the ones at zero go (amortised O(1) per key)
            self.saturated = True
            self.counts = {k: c - 1 for k, c in counts.items() if c > 1}
            return False
        return not self.saturated or n >= self.threshold
