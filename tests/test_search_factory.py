"""The rollout-facing stack: never raises, never drops a call, reports per-step metrics."""

import asyncio

from searchr1.config.schema import LocalBackendConfig
from searchr1.search.base import SearchStats
from searchr1.search.factory import SearchStack, build_search_backend
from tests.support.search_servers import Fault, RetrieverStub, fast_search_cfg, serve

METRIC_KEYS = {
    "search/calls",
    "search/failure_rate",
    "search/cache_hit_rate",
    "search/retries",
    "search/credits_used",
    "search/latency_mean_s",
    "search/latency_max_s",
    "search/breaker_open",
    "search/breaker_rejected",
    "search/deadline_hits",
}


class Exploding:
    async def fetch(self, query, topk):
        raise RuntimeError("bug in a layer")


async def test_a_bug_in_a_layer_becomes_a_failed_result():
    stack = SearchStack("local", Exploding(), SearchStats())
    result = await stack.search("q", 3)
    assert result.failed and "RuntimeError: bug in a layer" in result.error


async def test_every_call_gets_a_result_under_load_with_faults(http_session):
    stub = RetrieverStub()
    stub.faults.extend([Fault(status=502)] * 10 + [Fault(status=400)] * 5 + [Fault(status=200, body="x")] * 5)
    async with serve(stub.app()) as url:
        stack = build_search_backend(
            LocalBackendConfig(urls=[url]), fast_search_cfg(retries=1, concurrency=8), session=http_session
        )
        queries = [f"query {i % 40}" for i in range(120)]
        results = await asyncio.gather(*(stack.search(q, 2) for q in queries))
    assert [r.query for r in results] == queries
    failed = sum(r.failed for r in results)
    assert 0 < failed < len(queries)
    metrics = stack.stats_and_reset()
    assert metrics["search/calls"] == 120 and metrics["search/failure_rate"] == failed / 120
    assert metrics["search/cache_hit_rate"] > 0 and metrics["search/retries"] > 0


async def test_stats_and_reset_reports_every_key_and_starts_over(http_session):
    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        stack = build_search_backend(LocalBackendConfig(urls=[url]), fast_search_cfg(), session=http_session)
        await stack.search("Paris", 1)
        await stack.search("Paris", 1)
    first = stack.stats_and_reset()
    assert METRIC_KEYS <= set(first)
    assert first["search/calls"] == 2 and first["search/cache_hit_rate"] == 0.5 and first["search/latency_max_s"] > 0
    second = stack.stats_and_reset()
    assert second["search/calls"] == 0 and second["search/latency_max_s"] == 0 and stack.stats == SearchStats()


async def test_search_switched_off_returns_no_passages_and_never_calls_the_backend(http_session):
    import dataclasses

    from searchr1.search.render import render_observation

    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        cfg = dataclasses.replace(fast_search_cfg(), enabled=False)
        stack = build_search_backend(LocalBackendConfig(urls=[url]), cfg, session=http_session)
        result = await stack.search("Zeso Memen", 3)
        await stack.close()
    assert not result.failed and result.passages == ()
    assert render_observation(result, cfg.failure_text) == "\n\n<information></information>\n\n"
    assert stub.requests == []
