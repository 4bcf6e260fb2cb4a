"""Retries with exponential backoff and full jitter; a server's Retry-After wins over the backoff."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Optional

from searchr1.search.base import Passage, SearchStats
from searchr1.search.fetcher import Fetcher, SearchError

log = logging.getLogger(__name__)


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


class Retrying:
    """Re-runs retryable failures; gives up with the last error, which records how many attempts ran."""

    def __init__(self, inner: Fetcher, policy: RetryPolicy, stats: SearchStats, rng: Optional[random.Random] = None) -> None:
        self._inner = inner
        self._policy = policy
        self._stats = stats
        self._rng = rng or random.Random()

    async def fetch(self, query: str, topk: int) -> tuple[Passage, ...]:
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
