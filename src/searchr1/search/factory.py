"""Compose a search stack from config: client -> throttle -> retry -> deadline -> breaker -> cache -> record.

The throttle sits right above the client so every attempt, retries included, counts against the
QPS limit and the concurrency cap; the deadline bounds all attempts of one call together; the
breaker sees one outcome per retried call; the cache and the recorder see what the rollout sees.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import aiohttp

from searchr1.config.checks import ConfigError
from searchr1.config.schema import BackendConfig, RemoteCallConfig, SearchConfig
from searchr1.config.secrets import secret_values
from searchr1.search.base import Passage, SearchResult, SearchStats
from searchr1.search.cache import ResultCache
from searchr1.search.fetcher import Fetcher, SearchError
from searchr1.search.google import SerperClient, read_api_key
from searchr1.search.guards import BREAKER_REJECTED, BreakerGuard, CircuitBreaker, Throttle
from searchr1.search.local import LocalRetrieverClient
from searchr1.search.record import RECORD_FILE, Recorder, ReplayFetcher
from searchr1.search.retry import DEADLINE_HITS, Deadline, RetryPolicy, Retrying

log = logging.getLogger(__name__)
T = TypeVar("T")


class SearchStack:
    """The rollout-facing ``SearchBackend``: always returns a SearchResult, counts everything."""

    def __init__(
        self,
        name: str,
        fetcher: Fetcher,
        stats: SearchStats,
        *,
        cache: Optional[ResultCache] = None,
        recorder: Optional[Recorder] = None,
        breaker: Optional[CircuitBreaker] = None,
    ) -> None:
        self.name = name
        self.stats = stats
        self.cache = cache
        self.recorder = recorder
        self.breaker = breaker
        self._fetcher = fetcher
        self._latency_sum = 0.0
        self._latency_max = 0.0

    def __repr__(self) -> str:
        return f"SearchStack(name={self.name!r}, fetcher={self._fetcher!r}, cache={self.cache is not None})"

    async def search(self, query: str, topk: int) -> SearchResult:
        start = time.perf_counter()
        self.stats.calls += 1
        try:
            if self.cache is None:
                passages, cached = await self._fetcher.fetch(query, topk), False
            else:
                key = (self.name, query, topk)
                passages, cached = await self.cache.get_or_fetch(key, lambda: self._fetcher.fetch(query, topk))
            result = SearchResult(query=query, passages=passages, cached=cached)
        except SearchError as exc:
            result = SearchResult(query=query, failed=True, error=_describe(exc))
        except Exception as exc:  # a bug in a layer must still not take the rollout down
            log.exception("unexpected error in search stack %s", self.name)
            result = SearchResult(query=query, failed=True, error=f"internal error: {type(exc).__name__}: {exc}")
        result = dataclasses.replace(result, latency_s=time.perf_counter() - start)
        self._account(result)
        if self.recorder is not None:
            self.recorder.write(result, topk)
        return result

    def stats_and_reset(self) -> dict[str, float]:
        """This step's search metrics for the tracker; counters start again from zero."""
        stats, calls = self.stats, self.stats.calls
        metrics = {
            "search/calls": float(calls),
            "search/failure_rate": stats.failures / calls if calls else 0.0,
            "search/cache_hit_rate": (stats.cache_hits + stats.deduplicated) / calls if calls else 0.0,
            "search/retries": float(stats.retries),
            "search/credits_used": float(stats.billed),
            "search/latency_mean_s": self._latency_sum / calls if calls else 0.0,
            "search/latency_max_s": self._latency_max,
            "search/breaker_open": float(self.breaker is not None and self.breaker.state != CircuitBreaker.CLOSED),
            "search/breaker_rejected": stats.extra.get(BREAKER_REJECTED, 0.0),
            "search/deadline_hits": stats.extra.get(DEADLINE_HITS, 0.0),
        }
        self._reset()
        return metrics

    async def close(self) -> None:
        """Cancel requests still in flight and close the record file; the shared session is the caller's."""
        if self.cache is not None:
            self.cache.cancel_in_flight()
        if self.recorder is not None:
            self.recorder.close()

    def _account(self, result: SearchResult) -> None:
        if result.failed:
            self.stats.failures += 1
            log.debug("search failed for %r: %s", result.query, result.error)
        self._latency_sum += result.latency_s
        self._latency_max = max(self._latency_max, result.latency_s)

    def _reset(self) -> None:
        # Reset in place: the layers hold a reference to this stats object.
        for f in dataclasses.fields(SearchStats):
            setattr(self.stats, f.name, f.default_factory() if callable(f.default_factory) else f.default)
        self._latency_sum = self._latency_max = 0.0


def build_search_backend(
    backend_cfg: BackendConfig,
    search_cfg: SearchConfig,
    *,
    session: aiohttp.ClientSession,
    urls: Optional[list[str]] = None,
    run_dir: Optional[Path] = None,
) -> SearchStack:
    """The stack for ``backend``/``search`` config. Config problems (no key, no URL) raise ConfigError here,
    before any rollout starts; ``urls`` (e.g. the embedded retriever's) override ``backend.urls``."""
    stats = SearchStats()
    if not search_cfg.enabled:
        log.info(
            "search.enabled=false: every search returns no passages; backend %s is not contacted", backend_cfg.name
        )
        return SearchStack("disabled", NoPassages(), stats)
    recorder = _recorder(search_cfg, run_dir, backend_cfg)
    if search_cfg.replay_path:
        log.info(
            "search replays %s (search.replay_path); backend %s is not contacted",
            search_cfg.replay_path,
            backend_cfg.name,
        )
        return SearchStack("replay", ReplayFetcher(Path(search_cfg.replay_path)), stats, recorder=recorder)
    client = _client(backend_cfg, search_cfg, session=session, urls=urls, stats=stats)
    guarded = guard(client, search_cfg, stats)
    return SearchStack(
        backend_cfg.name, guarded, stats, cache=guarded.cache, recorder=recorder, breaker=guarded.breaker
    )


class Guarded(BreakerGuard[T]):
    """A client behind the guard rails of its ``RemoteCallConfig``; ``cache`` is None when caching is off."""

    def __init__(self, inner: Fetcher[T], breaker: CircuitBreaker, stats: SearchStats, cache: Optional[ResultCache[T]]):
        super().__init__(inner, breaker, stats)
        self.cache = cache


def guard(client: Fetcher[T], cfg: RemoteCallConfig, stats: SearchStats) -> Guarded[T]:
    """client -> throttle -> retry -> deadline -> breaker, and a result cache, as ``cfg`` (search.* or http.*)
    sets them: the one implementation every remote tool shares."""
    throttled = Throttle(client, concurrency=cfg.concurrency, qps_limit=cfg.qps_limit)
    retrying = Retrying(throttled, RetryPolicy(retries=cfg.retries, backoff_s=cfg.backoff_s), stats)
    bounded = Deadline(retrying, cfg.deadline_s, stats, key=f"{cfg.NODE}.deadline_s")
    breaker = CircuitBreaker(cfg.breaker_failures, cfg.breaker_reset_s)
    cache: Optional[ResultCache[T]] = ResultCache(cfg.cache_size, stats) if cfg.cache else None
    return Guarded(bounded, breaker, stats, cache)


class NoPassages:
    """The fetcher behind search.enabled=false: a successful search that found nothing."""

    async def fetch(self, query: str, topk: int) -> tuple[Passage, ...]:
        return ()


def _client(
    backend_cfg: BackendConfig,
    search_cfg: SearchConfig,
    *,
    session: aiohttp.ClientSession,
    urls: Optional[list[str]],
    stats: SearchStats,
) -> Fetcher:
    make = _CLIENTS.get(backend_cfg.name)
    if make is None:
        raise ConfigError(f"backend.name={backend_cfg.name!r} is not allowed; allowed: {', '.join(_CLIENTS)}")
    return make(backend_cfg, search_cfg, session, urls, stats)


def _google_client(
    backend_cfg: Any, search_cfg: SearchConfig, session: aiohttp.ClientSession, urls: Any, stats: SearchStats
) -> Fetcher:
    api_key = read_api_key(backend_cfg)
    return SerperClient(backend_cfg, api_key=api_key, session=session, timeout_s=search_cfg.timeout_s, stats=stats)


def _retriever_client(
    backend_cfg: Any,
    search_cfg: SearchConfig,
    session: aiohttp.ClientSession,
    urls: Optional[list[str]],
    stats: SearchStats,
) -> Fetcher:
    targets = list(urls or backend_cfg.retriever_urls)
    if not targets:
        raise ConfigError(
            "backend.urls=[] and no embedded retriever URL was given; allowed: at least one retriever URL"
        )
    return LocalRetrieverClient(targets, session=session, timeout_s=search_cfg.timeout_s)


_CLIENTS: dict[str, Callable[..., Fetcher]] = {"google": _google_client, "local": _retriever_client}
"""The HTTP client of each search backend (``backend.name``)."""


def _recorder(search_cfg: SearchConfig, run_dir: Optional[Path], backend_cfg: BackendConfig) -> Optional[Recorder]:
    if not search_cfg.record:
        return None
    if run_dir is None:
        raise ConfigError("search.record=true needs a run dir to write search_record.jsonl into")
    path = Path(run_dir) / RECORD_FILE
    log.info("recording every search to %s (search.record)", path)
    secret_env = backend_cfg.secret_env
    return Recorder(path, backend_cfg.name, secret_values([secret_env] if secret_env else []))


def _describe(exc: SearchError) -> str:
    return str(exc) if exc.attempts <= 1 else f"{exc} (gave up after {exc.attempts} attempts)"
