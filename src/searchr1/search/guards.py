"""Guard rails for shared services and paid APIs: rate limit, concurrency cap, circuit breaker."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Generic, Optional, TypeVar

from searchr1.search.base import SearchStats
from searchr1.search.fetcher import BreakerOpenError, Fetcher, SearchError

log = logging.getLogger(__name__)

T = TypeVar("T")
BREAKER_REJECTED = "breaker_rejected"
"""``SearchStats.extra`` counter: calls failed fast by an open breaker."""


class TokenBucket:
    """``rate`` requests per second on average, bursts up to ``capacity``.

    Each caller reserves a token at once and sleeps off any debt, so waiters are served in arrival
    order without a lock (single event loop, no await between reading and updating the bucket).
    """

    def __init__(
        self, rate: float, capacity: Optional[float] = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError(f"TokenBucket rate must be > 0, got {rate}")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    async def acquire(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.rate)


class Throttle(Generic[T]):
    """Every attempt that reaches the backend (retries included) takes a token and a concurrency slot."""

    def __init__(self, inner: Fetcher[T], *, concurrency: int, qps_limit: float) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(concurrency)
        self._bucket = TokenBucket(qps_limit) if qps_limit > 0 else None

    async def fetch(self, query: str, topk: int) -> T:
        if self._bucket is not None:
            await self._bucket.acquire()
        async with self._slots:
            return await self._inner.fetch(query, topk)


class CircuitBreaker:
    """closed -> open after ``failures`` consecutive failed calls -> one half-open probe after ``reset_s``.

    A successful probe closes the breaker; a failed one opens it for another ``reset_s``.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self.state = self.CLOSED
        self.consecutive_failures = 0
        self.trips = 0
        self._opened_at = 0.0

    def allow(self) -> bool:
        """May a call go through now? Flips open -> half-open (this caller is the probe) when due."""
        if self.state == self.CLOSED:
            return True
        if self.state == self.OPEN and self._clock() - self._opened_at >= self.reset_s:
            self.state = self.HALF_OPEN
            return True
        return False

    def retry_in(self) -> float:
        return max(0.0, self.reset_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        if self.state != self.CLOSED:
            log.info("search circuit breaker closed: the backend answered again")
        self.state = self.CLOSED
        self.consecutive_failures = 0

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self.state == self.HALF_OPEN or self.consecutive_failures >= self.failures:
            self._open()

    def abandon_probe(self) -> None:
        """The probe was cancelled without an answer: let the next caller probe instead."""
        if self.state == self.HALF_OPEN:
            self.state = self.OPEN
            self._opened_at = self._clock() - self.reset_s

    def _open(self) -> None:
        if self.state != self.OPEN:
            self.trips += 1
            log.warning(
                "search circuit breaker open after %d consecutive failures; failing fast for %.1fs "
                "(search.breaker_failures, search.breaker_reset_s)",
                self.consecutive_failures,
                self.reset_s,
            )
        self.state = self.OPEN
        self._opened_at = self._clock()


class BreakerGuard(Generic[T]):
    """Fails fast while the breaker is open; feeds it the outcome of every (retried) call."""

    def __init__(self, inner: Fetcher[T], breaker: CircuitBreaker, stats: SearchStats) -> None:
        self._inner = inner
        self.breaker = breaker
        self._stats = stats

    async def fetch(self, query: str, topk: int) -> T:
        if not self.breaker.allow():
            self._stats.extra[BREAKER_REJECTED] = self._stats.extra.get(BREAKER_REJECTED, 0.0) + 1
            raise BreakerOpenError(
                f"search backend circuit breaker is open after {self.breaker.consecutive_failures} consecutive "
                f"failures; next probe in {self.breaker.retry_in():.1f}s"
            )
        try:
            passages = await self._inner.fetch(query, topk)
        except SearchError as exc:
            if exc.trips_breaker:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()  # a query-specific rejection proves the backend is up
            raise
        except BaseException:
            self.breaker.abandon_probe()
            raise
        self.breaker.record_success()
        return passages
