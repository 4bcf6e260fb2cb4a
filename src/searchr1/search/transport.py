"""One JSON POST with an explicit timeout, its failures sorted into retryable or not."""

from __future__ import annotations

import asyncio
import json
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

import aiohttp

from searchr1.search.fetcher import MalformedResponseError, RejectedError, TransientError

_BODY_EXCERPT = 200


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout_s: float,
    headers: Optional[Mapping[str, str]] = None,
) -> Any:
    """POST ``payload`` and return the decoded JSON body of a 2xx answer.

    Raises TransientError (connection, timeout, 429, 5xx), RejectedError (other 4xx) or
    MalformedResponseError (2xx that is not JSON). Messages never include request headers,
    which may carry an API key.
    """
    try:
        async with session.post(
            url, json=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            raw = await resp.read()
            status, retry_after = resp.status, resp.headers.get("Retry-After")
    except asyncio.TimeoutError:
        raise TransientError(f"no answer from {url} within {timeout_s:g}s") from None
    except aiohttp.ClientError as exc:
        raise TransientError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
    text = raw.decode("utf-8", errors="replace")
    if status == 429:
        wait = parse_retry_after(retry_after)
        raise TransientError(f"{url} is rate limiting (HTTP 429, Retry-After={retry_after})", retry_after=wait)
    if status >= 500:
        raise TransientError(f"{url} answered HTTP {status}: {_excerpt(text)}")
    if status >= 400:
        raise RejectedError(f"{url} rejected the request (HTTP {status}): {_excerpt(text)}", status=status, detail=text)
    try:
        return json.loads(text)
    except ValueError:
        raise MalformedResponseError(
            f"{url} answered HTTP {status} with a body that is not JSON: {_excerpt(text)}"
        ) from None


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _BODY_EXCERPT else text[:_BODY_EXCERPT] + "..."
