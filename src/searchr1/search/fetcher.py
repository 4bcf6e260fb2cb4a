"""The internal layer interface of a search stack, and the errors its layers raise.

Inside the stack, layers (HTTP clients, throttle, retry, breaker, replay) raise ``SearchError``;
only ``SearchStack`` turns an error into a failed ``SearchResult``, so retry and breaker logic can
see what went wrong while the rollout never sees an exception.
"""

from __future__ import annotations

from typing import Optional, Protocol, TypeVar


class SearchError(Exception):
    """A search attempt that produced no passages. The message is shown in logs and metrics."""

    retryable = False
    """Worth another attempt (connection errors, timeouts, 429, 5xx)."""
    trips_breaker = True
    """Says something about the backend as a whole, not about one query."""

    def __init__(self, message: str, *, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.attempts = 1


class TransientError(SearchError):
    """Connection refused or reset, timeout, 429 or 5xx: the same request may succeed later."""

    retryable = True


class RejectedError(SearchError):
    """A 4xx for this particular request (bad query, too long, ...): retrying will not help."""

    trips_breaker = False

    def __init__(self, message: str, *, status: int, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class MalformedResponseError(SearchError):
    """The backend answered 2xx with a body we cannot read (wrong JSON shape, not JSON)."""


class AuthError(SearchError):
    """The backend refused our credentials; every request will fail the same way."""


class QuotaError(SearchError):
    """The paid API has no credits left."""


class DeadlineError(SearchError):
    """The search's total time (all attempts and backoff) ran past ``search.deadline_s``."""


class BreakerOpenError(SearchError):
    """Failed fast: the circuit breaker is open because the backend kept failing."""


Fetched = TypeVar("Fetched", covariant=True)


class Fetcher(Protocol[Fetched]):
    """One layer of the stack: the result for (query, topk) — passages for search, the answer's text for the
    http tool (topk unused) — or a ``SearchError``."""

    async def fetch(self, query: str, topk: int) -> Fetched: ...
