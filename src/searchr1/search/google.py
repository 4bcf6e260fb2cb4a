"""Google results through serper.dev, shaped like Search-R1 corpus passages.

The API key is read once at construction from the environment variable named in config and is kept
out of every message, repr and log line.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

from searchr1.config.checks import ConfigError
from searchr1.config.schema import GoogleBackendConfig
from searchr1.search.base import Passage, SearchStats
from searchr1.search.fetcher import AuthError, MalformedResponseError, QuotaError, RejectedError, SearchError
from searchr1.search.transport import post_json


def read_api_key(cfg: GoogleBackendConfig) -> str:
    """The serper key from ``$<backend.api_key_env>``; a one-line error when it is not set."""
    key = os.environ.get(cfg.api_key_env, "").strip()
    if not key:
        raise ConfigError(
            f"backend=google needs a serper.dev API key in the environment variable {cfg.api_key_env} "
            f"(backend.api_key_env); export {cfg.api_key_env}=<your key> and run again"
        )
    return key


class SerperClient:
    """One serper ``POST /search`` per query; ``num`` asks for topk organic results."""

    name = "google"

    def __init__(
        self,
        cfg: GoogleBackendConfig,
        *,
        api_key: str,
        session: aiohttp.ClientSession,
        timeout_s: float,
        stats: SearchStats,
    ) -> None:
        if not cfg.snippet_only:
            raise ConfigError("backend.snippet_only=false (fetching full pages) is not supported; allowed: true")
        self._cfg = cfg
        self._headers = {"X-API-KEY": api_key, "Content-Type": "application/json"}
        self._session = session
        self._timeout_s = timeout_s
        self._stats = stats

    def __repr__(self) -> str:
        return f"SerperClient(endpoint={self._cfg.endpoint!r}, api_key_env={self._cfg.api_key_env!r})"

    async def fetch(self, query: str, topk: int) -> tuple[Passage, ...]:
        payload = {"q": query, "num": topk, "gl": self._cfg.country, "hl": self._cfg.language}
        try:
            body = await post_json(
                self._session, self._cfg.endpoint, payload, timeout_s=self._timeout_s, headers=self._headers
            )
        except RejectedError as exc:
            raise self._explain(exc) from None
        self._stats.billed += _credits(body)
        return parse_serper_response(body, topk, self._cfg.endpoint)

    def _explain(self, exc: RejectedError) -> SearchError:
        """Turn serper's 4xx answers into messages that say what the user has to do."""
        env = self._cfg.api_key_env
        if exc.status in (401, 403):
            return AuthError(f"serper rejected the API key in ${env} (HTTP {exc.status}); check the key")
        if exc.status == 402 or "credit" in exc.detail.lower() or "quota" in exc.detail.lower():
            return QuotaError(
                f"serper account is out of credits (HTTP {exc.status}); top up or use another key in ${env}"
            )
        return exc


def parse_serper_response(body: Any, topk: int, endpoint: str) -> tuple[Passage, ...]:
    """``"title"\\nsnippet`` passages: the answer box first (as Search-R1's SerpAPI server does), then organic results."""
    if not isinstance(body, dict) or not isinstance(body.get("organic", []), list):
        raise MalformedResponseError(f"{endpoint} answered without an 'organic' result list: {str(body)[:200]}")
    hits = []
    box = body.get("answerBox")
    if isinstance(box, dict) and (box.get("answer") or box.get("snippet")):
        hits.append(_passage(box.get("title", ""), box.get("answer") or box.get("snippet"), box.get("link")))
    for item in body.get("organic", []):
        if isinstance(item, dict) and (item.get("title") or item.get("snippet")):
            hits.append(_passage(item.get("title", ""), item.get("snippet", ""), item.get("link")))
    return tuple(hits[:topk])


def _passage(title: Any, snippet: Any, link: Any) -> Passage:
    return Passage(contents=f'"{title}"\n{snippet}', id=None if link is None else str(link))


def _credits(body: Any) -> int:
    """serper reports the credits a search cost; a 2xx without that field cost one."""
    credits = body.get("credits") if isinstance(body, dict) else None
    return credits if isinstance(credits, int) and credits >= 0 else 1
