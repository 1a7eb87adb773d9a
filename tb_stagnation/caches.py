"""The plugin's caches: each bounded in bytes, so memory follows its budget, not the log.

A TensorBoard stays up for days over log directories of any size; a cache
bounded by entry count would hold 4,096 small summaries or 4,096 ranking
answers of 17 MB alike. Every cache here is told what each value costs
(``size_of``) and evicts the least recently used values past its budget.
The budgets are stated where the caches are made (:mod:`tb_stagnation.engine`,
:mod:`tb_stagnation.plugin`) and in the README.

Hand-written rather than ``functools.lru_cache`` (which bounds by count and
cannot be told a value's version) or ``cachetools`` (a dependency for
thirty lines); every method is thread-safe, since werkzeug serves requests
on threads.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    """A map of at most ``max_bytes`` of values (by ``size_of``), least recently used evicted first.

    A value larger than the whole budget is not kept: caching it would
    evict everything else for one entry.
    """

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._lock = threading.Lock()
        self._values: collections.OrderedDict[Hashable, tuple[V, int]] = collections.OrderedDict()
        self.nbytes = 0  # what the kept values cost, by size_of
        self.evictions = 0

    def get(self, key: Hashable) -> V | None:
        """The value under ``key`` (now the most recently used), or None."""
        with self._lock:
            found = self._values.get(key)
            if found is None:
                return None
            self._values.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, value: V) -> None:
        """Keep ``value`` under ``key``, evicting the least recently used past the budget."""
        size = self._size_of(value)
        with self._lock:
            old = self._values.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            if size > self.max_bytes:
                return
            self._values[key] = (value, size)
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, (_, evicted) = self._values.popitem(last=False)
                self.nbytes -= evicted
                self.evictions += 1

    def __len__(self) -> int:
        return len(self._values)


class Recent(Generic[V]):
    """Values that stand for ``ttl`` seconds after they were made, one per key.

    For what is cheap to keep but dear to make again on every request of a
    burst (the listings); expired values are dropped on the next ``put``,
    so keys that stop being asked for do not pile up.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._values: dict[Hashable, tuple[float, V]] = {}

    def get(self, key: Hashable) -> V | None:
        """The value under ``key`` if made less than ``ttl`` seconds ago, else None."""
        with self._lock:
            found = self._values.get(key)
        if found is None or time.monotonic() - found[0] >= self.ttl:
            return None
        return found[1]

    def put(self, key: Hashable, value: V, made_at: float) -> None:
        """Keep ``value`` as made at ``made_at`` (``time.monotonic()`` before making it)."""
        with self._lock:
            now = time.monotonic()
            self._values = {k: v for k, v in self._values.items() if now - v[0] < self.ttl}
            self._values[key] = (made_at, value)
