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
    """POST ``payload`` and return the decoded JSON body of a 2xx answer (see :func:`request_json`)."""
    return await request_json(session, "POST", url, payload=payload, timeout_s=timeout_s, headers=headers)


async def request_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout_s: float,
    payload: Optional[Mapping[str, Any]] = None,
    params: Optional[Mapping[str, str]] = None,
    headers: Optional[Mapping[str, str]] = None,
    max_bytes: Optional[int] = None,
) -> Any:
    """Send ``payload`` as a JSON body (or ``params`` as a query) and return the decoded JSON of a 2xx answer.

    Raises TransientError (connection, timeout, 429, 5xx), RejectedError (other 4xx) or
    MalformedResponseError (2xx that is not JSON, or a body over ``max_bytes``, which is never read whole).
    Messages never include request headers, which may carry an API key.
    """
    try:
        async with session.request(
            method, url, json=payload, params=params, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            raw = await _read(resp, url, max_bytes)
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


async def _read(resp: aiohttp.ClientResponse, url: str, max_bytes: Optional[int]) -> bytes:
    if max_bytes is None:
        return await resp.read()
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(65_536):
        size += len(chunk)
        if size > max_bytes:
            raise MalformedResponseError(f"{url} answered more than {max_bytes} bytes; the rest was not read")
        chunks.append(chunk)
    return b"".join(chunks)


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
