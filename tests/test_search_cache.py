"""Result cache and in-flight de-duplication inside a real stack."""

import asyncio

from searchr1.config.schema import LocalBackendConfig
from searchr1.search.factory import build_search_backend
from tests.support.search_servers import Fault, RetrieverStub, fast_search_cfg, serve


def stack_for(session, url, **search):
    return build_search_backend(LocalBackendConfig(urls=[url]), fast_search_cfg(**search), session=session)


async def test_repeated_queries_are_served_from_cache(http_session):
    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        stack = stack_for(http_session, url)
        first = await stack.search("Paris", 2)
        second = await stack.search("Paris", 2)
        other_topk = await stack.search("Paris", 1)
    assert not first.cached and second.cached and not other_topk.cached
    assert second.passages == first.passages
    assert len(stub.requests) == 2
    assert stack.stats_and_reset()["search/cache_hit_rate"] == 1 / 3


async def test_identical_concurrent_queries_send_one_request(http_session):
    stub = RetrieverStub()
    stub.delay_s = 0.1
    async with serve(stub.app()) as url:
        stack = stack_for(http_session, url)
        results = await asyncio.gather(*(stack.search("Mount Everest", 3) for _ in range(8)))
    assert len(stub.requests) == 1
    assert len({r.passages for r in results}) == 1 and not results[0].failed
    assert stack.stats.deduplicated == 7 and sum(r.cached for r in results) == 7


async def test_a_shared_failure_reaches_every_waiter_and_is_not_cached(http_session):
    stub = RetrieverStub()
    stub.delay_s = 0.05
    stub.faults.append(Fault(status=500))
    async with serve(stub.app()) as url:
        stack = stack_for(http_session, url, retries=0)
        results = await asyncio.gather(*(stack.search("Nile", 1) for _ in range(4)))
        assert all(r.failed for r in results) and len(stub.requests) == 1
        again = await stack.search("Nile", 1)
    assert not again.failed and not again.cached and len(stub.requests) == 2


async def test_cancelling_one_waiter_does_not_cancel_the_shared_request(http_session):
    stub = RetrieverStub()
    stub.delay_s = 0.1
    async with serve(stub.app()) as url:
        stack = stack_for(http_session, url)
        impatient = asyncio.ensure_future(stack.search("Berlin", 1))
        patient = asyncio.ensure_future(stack.search("Berlin", 1))
        await asyncio.sleep(0.02)
        impatient.cancel()
        result = await patient
    assert not result.failed and result.passages[0].id == "1"


async def test_least_recently_used_results_are_evicted(http_session):
    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        stack = stack_for(http_session, url, cache_size=2)
        for query in ("a", "b", "a", "c", "a", "b"):
            await stack.search(query, 1)
    # "b" was evicted by "c" (a was used more recently); "a" stayed
    assert [r["queries"][0] for r in stub.requests] == ["a", "b", "c", "b"]


async def test_cache_off_sends_every_query(http_session):
    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        stack = stack_for(http_session, url, cache=False)
        await asyncio.gather(*(stack.search("Paris", 1) for _ in range(3)))
    assert len(stub.requests) == 3 and stack.stats_and_reset()["search/cache_hit_rate"] == 0.0
