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

:class:`Refreshed` keeps the last complete value of each key and makes the
next one on a background thread, so that a request never waits for new data
to be read once a first answer exists.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, NamedTuple, TypeVar

logger = logging.getLogger(__name__)
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

    def discard(self, key: Hashable) -> None:
        """Forget the value under ``key``, if any."""
        with self._lock:
            old = self._values.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]

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


class Stamp(NamedTuple):
    """Which data a value was made from: when it was listed, and what the listing said."""

    made_at: float  # time.monotonic() before listing: orders values by the data they saw
    version: Hashable  # equal versions: the same data


class Refreshed(Generic[V]):
    """The last complete value of each key, made anew on a background thread when its data changed.

    Making a value from new data can take seconds (the data provider's read
    of every changed tag); meanwhile a request gets the last complete value
    at once, told that a newer one is being made. Keys belong to groups (an
    experiment), and a group has at most one computation under way: its
    waiting keys are made one after another on one worker, as they read the
    same changed data, which the first of them caches for the others.

    Bounded: the values kept by bytes (an :class:`LRU` of ``max_bytes``), the
    keys waiting per group by count (``max_pending``; the oldest is dropped,
    and asked for again by its next request), the threads by ``workers``.
    Never backwards: a value replaces the kept one only if its data was listed
    no earlier, so no answer is older than the previous complete one.
    """

    def __init__(self, max_bytes: int, size_of: Callable[[V], int], workers: int = 2, max_pending: int = 32) -> None:
        self._kept: LRU[tuple[Stamp, V]] = LRU(max_bytes, lambda entry: size_of(entry[1]))
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tb-stagnation-refresh")
        self._lock = threading.RLock()  # held by while_refreshing around _schedule
        # group -> key -> its maker, waiting; a group is present exactly while a worker drains it.
        self._waiting: dict[Hashable, collections.OrderedDict[Hashable, Callable[[], tuple[Stamp, V]]]] = {}
        self._making: dict[Hashable, Hashable] = {}  # group -> the key its worker is making
        self.max_pending = max_pending

    @property
    def max_bytes(self) -> int:
        """The budget of the values kept."""
        return self._kept.max_bytes

    def get(
        self, group: Hashable, key: Hashable, current: Hashable, make: Callable[[], tuple[Stamp, V]], wait: bool = False
    ) -> tuple[V, bool]:
        """``(value, refreshing)`` for ``key`` while the data listed is ``current``.

        ``make`` lists the data afresh and makes the value from it, returning
        the listing's stamp with it. The kept value if made from ``current``;
        else, with ``wait`` or nothing kept, a value made now (or a newer one
        kept meanwhile); else the kept value at once, ``refreshing`` true,
        while ``make`` runs in the background.
        """
        kept = self._kept.get(key)
        if kept is not None and kept[0].version == current:
            return kept[1], False
        if kept is None or wait:
            return self._keep(key, *make()), False
        self._schedule(group, key, make)
        return kept[1], True

    def while_refreshing(self, group: Hashable, key: Hashable, make: Callable[[], tuple[Stamp, V]]) -> V | None:
        """The kept value of ``key`` while its group is being refreshed, else None.

        For a request that need not list the data to know that a newer
        answer may be on its way. ``key`` is queued unless it is being made
        now: on a log that stopped changing, the refresh under way is the
        last one, and the next request lists and finds its answer current.
        """
        with self._lock:
            kept = self._kept.get(key)
            if group not in self._waiting or kept is None:
                return None
            if self._making.get(group) != key:
                self._schedule(group, key, make)
            return kept[1]

    def _keep(self, key: Hashable, stamp: Stamp, value: V) -> V:
        """Keep ``value`` unless a value of later data is kept; the newer of the two."""
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0].made_at > stamp.made_at:
                return kept[1]
            self._kept.put(key, (stamp, value))
            return value

    def _schedule(self, group: Hashable, key: Hashable, make: Callable[[], tuple[Stamp, V]]) -> None:
        with self._lock:
            draining = group in self._waiting
            waiting = self._waiting.setdefault(group, collections.OrderedDict())
            waiting[key] = make
            waiting.move_to_end(key)
            while len(waiting) > self.max_pending:
                waiting.popitem(last=False)
            if not draining:
                self._executor.submit(self._drain, group)

    def _drain(self, group: Hashable) -> None:
        """Make a group's waiting keys one at a time until none is left."""
        while True:
            with self._lock:
                waiting = self._waiting[group]
                if not waiting:
                    del self._waiting[group]
                    self._making.pop(group, None)
                    return
                key, make = waiting.popitem(last=False)
                self._making[group] = key
            try:
                self._keep(key, *make())
            except Exception as e:  # e.g. the run was deleted: the next request makes it in front, and says why
                logger.warning("tb-stagnation: background refresh of %r failed: %s", key, e)
                self._kept.discard(key)
