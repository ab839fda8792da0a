"""What the registry keeps in memory, per process: loaded model versions, and small records read from disk.

Two layers: an LRU of verified versions keyed by ``(name, version)``, each remembered with the
signature of its directory so a version deleted or replaced by another process is noticed on the next
lookup; and a short-lived map from what a request asked for (``(name, version or alias)``) to the version
it resolved to, so the scoring hot path makes no system call within ``recheck_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..domain import VersionMetadata

#: What the cache counts: lookups served from memory, lookups that were not, artefacts read and verified,
#: entries stored, entries evicted, and versions that failed their integrity check.
COUNTERS = ("hits", "misses", "loads", "stored", "evictions", "integrity_failures")


T = TypeVar("T")


class StatKeyed(Generic[T]):
    """Values read from disk, kept with the stat signature of what they were read from; read again when the
    signature a caller finds differs (another process changed the file)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[Hashable, T]] = {}

    def get(self, name: str, signature: Hashable, read: Callable[[], T]) -> T:
        with self._lock:
            cached = self._items.get(name)
        if cached is not None and cached[0] == signature:
            return cached[1]
        value = read()
        self.put(name, signature, value)
        return value

    def put(self, name: str, signature: Hashable, value: T) -> None:
        with self._lock:
            self._items[name] = (signature, value)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready to predict with: the unpickled object plus what is known about it.

    ``model`` is shared by every caller that loads the same version: treat it as read-only.
    """

    name: str
    version: int
    model: Any
    metadata: VersionMetadata
    threshold: float | None


@dataclass(frozen=True, slots=True)
class CacheEntry:
    model: Any
    metadata: VersionMetadata
    dir_sig: tuple[int, int]  # (st_ino, st_mtime_ns) of the version dir, to notice deletes/replacement


class VersionCache:
    """The LRU of loaded versions and the short-lived map of resolved requests (see the module docstring)."""

    def __init__(self, size: int, recheck_seconds: float) -> None:
        self.size = size
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()  # guards the LRU and the counters
        self._entries: OrderedDict[tuple[str, int], CacheEntry] = OrderedDict()
        self._resolved: dict[tuple[str, int | str | None], tuple[float, LoadedModel]] = {}
        self._counters = dict.fromkeys(COUNTERS, 0)
        #: Called as ``observer(counter, increment, entries_cached)`` on every counted event (e.g. Prometheus).
        self.observer: Callable[[str, int, int], None] | None = None

    # -- the LRU ------------------------------------------------------------------------------------------
    def get(self, key: tuple[str, int], alive: Callable[[CacheEntry], bool], *, count: bool) -> CacheEntry | None:
        """The entry for ``key`` if ``alive(entry)`` still holds (else it is dropped); counted as a hit or a
        miss when ``count``."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and not alive(entry):
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            entry = None
        if entry is not None:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
        if count:
            self.count("hits" if entry is not None else "misses")
        return entry

    def put(self, key: tuple[str, int], entry: CacheEntry) -> None:
        if self.size == 0:
            return
        evicted = 0
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
                evicted += 1
        self.count("stored")
        if evicted:
            self.count("evictions", evicted)

    def drop(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._entries.pop(key, None)

    # -- resolved requests --------------------------------------------------------------------------------
    def resolved(self, ref: tuple[str, int | str | None]) -> LoadedModel | None:
        """What ``ref`` resolved to less than ``recheck_seconds`` ago, counted as a hit; else None."""
        if not self.size:
            return None
        found = self._resolved.get(ref)
        if found is None or found[0] <= time.monotonic():
            return None
        self.count("hits")
        return found[1]

    def remember_resolved(self, ref: tuple[str, int | str | None], loaded: LoadedModel) -> None:
        if not self.size or self.recheck_seconds <= 0:
            return
        if len(self._resolved) >= self.size:  # never keep more models alive than the LRU holds
            self._resolved.clear()
        self._resolved[ref] = (time.monotonic() + self.recheck_seconds, loaded)

    def forget_resolved(self) -> None:
        """After a write by this process: its own changes show on the next request."""
        self._resolved.clear()

    # -- counters -----------------------------------------------------------------------------------------
    def count(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self._counters[counter] += n
            cached = len(self._entries)
        if self.observer is not None:
            self.observer(counter, n, cached)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**self._counters, "cached": len(self._entries), "cache_size": self.size}
