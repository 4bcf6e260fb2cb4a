"""Retries with exponential backoff and full jitter; a server's Retry-After wins over the backoff.
A deadline bounds one search's total time, all attempts and waits included."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Generic, Optional, TypeVar

from searchr1.search.base import SearchStats
from searchr1.search.fetcher import DeadlineError, Fetcher, SearchError

log = logging.getLogger(__name__)

T = TypeVar("T")
DEADLINE_HITS = "deadline_hits"
"""``SearchStats.extra`` counter: searches that ran out of ``search.deadline_s``."""


@dataclass(frozen=True)
class RetryPolicy:
    retries: int
    """Attempts after the first one."""
    backoff_s: float
    """Delay cap before retry n is backoff_s * 2**n; the actual delay is uniform below it."""
    max_backoff_s: float = 30.0
    """Upper bound of the exponential cap."""
    max_retry_after_s: float = 60.0
    """A Retry-After longer than this is not waited out: the search fails instead of stalling the rollout."""

    def delay(self, retry_index: int, retry_after: Optional[float], rng: random.Random) -> float:
        if retry_after is not None:
            return retry_after
        cap = min(self.max_backoff_s, self.backoff_s * (2**retry_index))
        return rng.uniform(0.0, cap)


class Retrying(Generic[T]):
    """Re-runs retryable failures; gives up with the last error, which records how many attempts ran."""

    def __init__(
        self, inner: Fetcher[T], policy: RetryPolicy, stats: SearchStats, rng: Optional[random.Random] = None
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._stats = stats
        self._rng = rng or random.Random()

    async def fetch(self, query: str, topk: int) -> T:
        attempt = 0
        while True:
            try:
                return await self._inner.fetch(query, topk)
            except SearchError as exc:
                attempt += 1
                exc.attempts = attempt
                if not self._worth_retrying(exc, attempt):
                    raise
                delay = self._policy.delay(attempt - 1, exc.retry_after, self._rng)
                self._stats.retries += 1
                log.debug("search attempt %d failed (%s); retrying in %.2fs", attempt, exc, delay)
                await asyncio.sleep(delay)

    def _worth_retrying(self, exc: SearchError, attempts_done: int) -> bool:
        if not exc.retryable or attempts_done > self._policy.retries:
            return False
        return exc.retry_after is None or exc.retry_after <= self._policy.max_retry_after_s


class Deadline(Generic[T]):
    """Fails a search whose attempts and backoff together take longer than ``deadline_s``: without it
    one stuck search stalls its trajectory for timeout_s x (retries + 1) plus the backoff."""

    def __init__(
        self, inner: Fetcher[T], deadline_s: float, stats: SearchStats, key: str = "search.deadline_s"
    ) -> None:
        self._inner = inner
        self._deadline_s = deadline_s
        self._key = key
        self._stats = stats

    async def fetch(self, query: str, topk: int) -> T:
        try:
            return await asyncio.wait_for(self._inner.fetch(query, topk), self._deadline_s)
        except asyncio.TimeoutError:
            self._stats.extra[DEADLINE_HITS] = self._stats.extra.get(DEADLINE_HITS, 0.0) + 1
            raise DeadlineError(f"no result within {self._key}={self._deadline_s:g}s") from None
