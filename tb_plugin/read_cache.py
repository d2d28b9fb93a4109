"""What the plugin keeps between requests: each run's series index, the points read of its
tags, and values computed from them (e.g. a run's findings), while the run has no new data.

Every cached value is keyed by the run's *version* (its tags' newest steps and wall times when
it was last listed), so a run that got new data (seen by the next listing: the ``runs`` route,
the tab's Reload) is read afresh, and the other runs' entries stay. Points are kept up to a
budget of float32 values, least recently used first out.

Example:
    >>> cache = ReaderCache(max_values=10)
    >>> cache.derived(("exp", "run", 1, "answer"), lambda: 42), cache.derived(("exp", "run", 1, "answer"), lambda: 0)
    (42, 42)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

MAX_VALUES = 64 * 2**20  # float32 values of points kept (256 MiB)
MAX_DERIVED = 4096  # small computed values kept (a run's findings)


@dataclass
class ReaderCache:
    """Series indexes by ``(experiment id, run)``, points by ``(experiment id, run, version,
    tag)``, derived values by any key that holds the run's version."""

    max_values: int = MAX_VALUES
    indexes: dict[tuple[str, str], Any] = field(default_factory=dict)
    _points: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict)
    _sizes: dict[Hashable, int] = field(default_factory=dict)
    _derived: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict)
    _held: int = 0

    def points(self, key: Hashable) -> Any:
        """The points stored under ``key`` (as decoded by the reader), or ``None``."""
        found = self._points.get(key)
        if found is not None:
            self._points.move_to_end(key)
        return found

    def keep_points(self, key: Hashable, points: Any, size: int) -> None:
        """Store ``points`` (``size`` float32 values) under ``key``, evicting the least
        recently used ones beyond the budget."""
        if size > self.max_values:
            return
        if key in self._points:
            self._held -= self._sizes.pop(key)
            del self._points[key]
        self._points[key], self._sizes[key] = points, size
        self._held += size
        while self._held > self.max_values:
            oldest, _ = self._points.popitem(last=False)
            self._held -= self._sizes.pop(oldest)

    def kept(self, key: Hashable) -> Any:
        """The value computed for ``key``, or ``None`` when none is kept."""
        if key in self._derived:
            self._derived.move_to_end(key)
        return self._derived.get(key)

    def derived(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value computed for ``key`` (computed now when not kept)."""
        if key in self._derived:
            self._derived.move_to_end(key)
            return self._derived[key]
        value = compute()
        self._derived[key] = value
        while len(self._derived) > MAX_DERIVED:
            self._derived.popitem(last=False)
        return value
