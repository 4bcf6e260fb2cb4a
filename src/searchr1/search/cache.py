"""Result cache and in-flight de-duplication.

The n GRPO samples of one prompt often send the same query at the same moment: the first caller
starts the backend request and the others await the same task instead of sending their own.
Only successes are cached, so a transient outage is not remembered.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from searchr1.search.base import SearchStats

T = TypeVar("T")


class ResultCache(Generic[T]):
    """LRU of successful results plus a table of requests in flight, keyed by (backend, query, topk)."""

    def __init__(self, max_size: int, stats: SearchStats) -> None:
        self.max_size = max_size
        self._stats = stats
        self._done: OrderedDict[Hashable, T] = OrderedDict()
        self._in_flight: dict[Hashable, asyncio.Task[T]] = {}

    async def get_or_fetch(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The passages for ``key`` and whether they came without a new backend request."""
        if key in self._done:
            self._done.move_to_end(key)
            self._stats.cache_hits += 1
            return self._done[key], True
        task = self._in_flight.get(key)
        shared = task is not None
        if task is not None:
            self._stats.deduplicated += 1
        else:
            task = asyncio.ensure_future(fetch())
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        # shield: one caller being cancelled must not cancel the request the others wait for.
        return await asyncio.shield(task), shared

    def cancel_in_flight(self) -> None:
        for task in list(self._in_flight.values()):
            task.cancel()

    def _settle(self, key: Hashable, task: asyncio.Task[T]) -> None:
        self._in_flight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return  # the exception reaches every awaiting caller; reading it here silences asyncio's warning
        self._done[key] = task.result()
        self._done.move_to_end(key)
        while len(self._done) > self.max_size:
            self._done.popitem(last=False)
