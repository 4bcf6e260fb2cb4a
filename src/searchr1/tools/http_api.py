"""The http tool: an internal JSON API the policy calls with one argument (the recipe's "internal API").

``http.url``, ``http.method``, ``http.argument_field`` and ``http.arguments`` say how a call becomes a request; the answer's JSON (or
the field ``http.result_field`` names) is what the model reads, between ``<result>`` and ``</result>``. An
auth header's value comes from the environment variable ``http.auth_env`` names and never reaches config,
logs or the model. Calls go through the guard rails search has (timeouts, retries, deadline, circuit
breaker, QPS limit, cache): :func:`searchr1.search.factory.guard`.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional

import aiohttp

from searchr1.config.checks import ConfigError, check_choice, check_range
from searchr1.config.schema import RemoteCallConfig
from searchr1.preflight import secret_problem
from searchr1.search.base import SearchStats
from searchr1.search.factory import guard
from searchr1.search.fetcher import MalformedResponseError, SearchError
from searchr1.search.guards import BREAKER_REJECTED
from searchr1.search.retry import DEADLINE_HITS
from searchr1.search.transport import request_json
from searchr1.tools.base import ToolContext, ToolOutput, ToolSpec, cut_observation

log = logging.getLogger(__name__)

ARGUMENT = "{argument}"


@dataclass(kw_only=True)
class HttpToolConfig(RemoteCallConfig):
    """The http tool: an internal JSON API called with the policy's one argument (``<http>order 1234</http>``)."""

    NODE: ClassVar[str] = "http"
    url: str = ""
    """Endpoint URL (http:// or https://); required when the tool is on."""
    method: str = "POST"
    """POST sends ``arguments`` as a JSON body; GET sends them as query parameters."""
    argument_field: Optional[str] = "query"
    """The request field that carries what the policy wrote (``{"query": "<argument>"}``); null: only
    ``http.arguments``."""
    arguments: dict[str, str] = field(default_factory=dict)
    """Further request fields (add them with ``+http.arguments.NAME=VALUE``); ``{argument}`` in a value is
    replaced by what the policy wrote."""
    auth_header: str = "Authorization"
    """Header that carries the secret from ``http.auth_env``."""
    auth_env: Optional[str] = None
    """Name of the environment variable holding that header's value (e.g. 'Bearer ...'); never the value itself."""
    result_field: Optional[str] = None
    """Dotted path of the answer's field to show (e.g. 'data.status'); None shows the whole JSON answer."""
    description: str = "Call the internal API with one argument; it answers in JSON."
    """What the prompt tells the policy this tool does."""
    max_response_bytes: int = 1_000_000
    """Largest response body read; a larger one fails the call without being read whole."""
    max_observation_chars: int = 2000
    """Characters of the answer the model sees (the rest is cut with a marker)."""
    failure_text: str = "The API call failed: {error}"
    """What the model sees when a call fails after all retries (``{error}`` names why)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("http.method", self.method, ("GET", "POST"))
        check_range("http.max_response_bytes", self.max_response_bytes, low=1024)
        check_range("http.max_observation_chars", self.max_observation_chars, low=16)
        if self.auth_env == "":
            raise ConfigError("http.auth_env='' is invalid; allowed: null or the name of an environment variable")
        if self.url and not _is_http_url(self.url):
            raise ConfigError(f"http.url={self.url!r} is not a URL; allowed: http://HOST[:PORT][/PATH] or https://...")

    @property
    def secret_envs(self) -> list[str]:
        return [self.auth_env] if self.auth_env else []

    def check_selected(self) -> None:
        if not self.url:
            raise ConfigError("tools names http but http.url is not set (add http.url=http://HOST:PORT/PATH)")


def _is_http_url(url: str) -> bool:
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.hostname) and " " not in url


class HttpApiClient:
    """One request per call; raises ``SearchError``s for the guard rails to retry or count."""

    def __init__(self, cfg: HttpToolConfig, session: aiohttp.ClientSession, headers: Mapping[str, str]) -> None:
        self._cfg = cfg
        self._session = session
        self._headers = dict(headers)

    def __repr__(self) -> str:  # never the headers: they may hold the secret
        return f"HttpApiClient(url={self._cfg.url!r}, method={self._cfg.method})"

    async def fetch(self, argument: str, topk: int) -> str:
        cfg = self._cfg
        fields = {key: value.replace(ARGUMENT, argument) for key, value in cfg.arguments.items()}
        if cfg.argument_field:
            fields[cfg.argument_field] = argument
        body = await request_json(
            self._session,
            cfg.method,
            cfg.url,
            timeout_s=cfg.timeout_s,
            payload=fields if cfg.method == "POST" else None,
            params=fields if cfg.method == "GET" else None,
            headers=self._headers,
            max_bytes=cfg.max_response_bytes,
        )
        return _render(_field(body, cfg.result_field, cfg.url))


def _field(body: Any, path: Optional[str], url: str) -> Any:
    for key in path.split(".") if path else []:
        if not isinstance(body, dict) or key not in body:
            raise MalformedResponseError(f"{url} answered without the field {path!r} (http.result_field)")
        body = body[key]
    return body


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


class HttpTool:
    """The guarded client as a tool: never raises, counts retries, deadline hits and breaker rejections."""

    def __init__(self, cfg: HttpToolConfig, client: HttpApiClient) -> None:
        self._cfg = cfg
        self._stats = SearchStats()
        self._guarded = guard(client, cfg, self._stats)

    async def call(self, argument: str) -> ToolOutput:
        cache = self._guarded.cache
        try:
            if cache is None:
                text = await self._guarded.fetch(argument, 0)
            else:
                text, _ = await cache.get_or_fetch(argument, lambda: self._guarded.fetch(argument, 0))
        except SearchError as exc:
            return ToolOutput(self._cfg.failure_text.replace("{error}", str(exc)), failed=True, error=str(exc))
        return ToolOutput(cut_observation(text, self._cfg.max_observation_chars))

    def stats_and_reset(self) -> dict[str, float]:
        """Counts only (Miles adds the counts of its rollout processes)."""
        stats = self._stats
        metrics = {
            "tool/http/retries": float(stats.retries),
            "tool/http/cache_hits": float(stats.cache_hits + stats.deduplicated),
            "tool/http/deadline_hits": stats.extra.get(DEADLINE_HITS, 0.0),
            "tool/http/breaker_rejected": stats.extra.get(BREAKER_REJECTED, 0.0),
        }
        self._stats.retries = self._stats.cache_hits = self._stats.deduplicated = 0
        self._stats.extra.clear()
        return metrics

    async def close(self) -> None:
        if self._guarded.cache is not None:
            self._guarded.cache.cancel_in_flight()


def build(cfg: HttpToolConfig, ctx: ToolContext) -> HttpTool:
    headers = {}
    if cfg.auth_env:
        value = os.environ.get(cfg.auth_env)
        if not value:
            raise ConfigError(f"environment variable {cfg.auth_env} is not set (http.auth_env names it)")
        headers[cfg.auth_header] = value
    return HttpTool(cfg, HttpApiClient(cfg, ctx.session, headers))


def preflight(cfg: HttpToolConfig, run_cfg: Any, env: Mapping[str, str]) -> list[str]:
    problem = secret_problem(env, cfg.auth_env, "http.auth_env") if cfg.auth_env else None
    return [problem] if problem else []


def endpoints_problems(cfg: HttpToolConfig, backend: Any) -> list[str]:
    """Whether something listens at http.url (a TCP connect: a request could have side effects on the API)."""
    import socket

    parsed = urllib.parse.urlsplit(cfg.url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=3.0):
            return []
    except OSError as exc:
        return [f"http.url={cfg.url}: nothing answers at {parsed.hostname}:{port} ({exc})"]


TOOL = ToolSpec(
    name="http",
    config_cls=HttpToolConfig,
    description="Call the internal API.",
    argument="argument",
    argument_description="The value the API is called with.",
    example="order 1234",
    build=build,
    preflight=preflight,
    endpoints_problems=endpoints_problems,
)
