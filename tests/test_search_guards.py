"""Token bucket, concurrency cap and circuit breaker, alone and inside a real stack."""

import asyncio
import time

from searchr1.config.schema import LocalBackendConfig
from searchr1.search.factory import build_search_backend
from searchr1.search.guards import CircuitBreaker, TokenBucket
from tests.support.search_servers import Fault, RetrieverStub, fast_search_cfg, serve


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


async def test_token_bucket_holds_the_rate_after_the_burst():
    bucket = TokenBucket(rate=50.0, capacity=5)
    start = time.perf_counter()
    await asyncio.gather(*(bucket.acquire() for _ in range(30)))
    elapsed = time.perf_counter() - start
    # 5 tokens at once, the other 25 at 50/s
    assert 0.45 <= elapsed < 1.5


async def test_qps_limit_paces_backend_requests(http_session):
    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        stack = build_search_backend(
            LocalBackendConfig(urls=[url]), fast_search_cfg(qps_limit=40.0, cache=False), session=http_session
        )
        start = time.perf_counter()
        results = await asyncio.gather(*(stack.search(f"q{i}", 1) for i in range(60)))
        elapsed = time.perf_counter() - start
    assert not any(r.failed for r in results)
    assert 0.45 <= elapsed < 2.0  # a one-second burst of 40, then 20 more at 40/s


async def test_concurrency_cap_bounds_requests_in_flight(http_session):
    stub = RetrieverStub()
    stub.delay_s = 0.05
    async with serve(stub.app()) as url:
        stack = build_search_backend(
            LocalBackendConfig(urls=[url]), fast_search_cfg(concurrency=3, cache=False), session=http_session
        )
        await asyncio.gather(*(stack.search(f"q{i}", 1) for i in range(12)))
    assert stub.max_in_flight == 3


def test_breaker_opens_after_consecutive_failures_and_recovers_through_a_probe():
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, reset_s=5.0, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()  # a success resets the count: failures must be consecutive
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 5.0
    assert breaker.allow() and breaker.state == "half_open"
    assert not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()  # failed probe: another full wait
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.trips == 2


def test_cancelled_probe_lets_the_next_caller_probe():
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, reset_s=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow()
    breaker.abandon_probe()
    assert breaker.allow() and breaker.state == "half_open"


async def test_stack_fails_fast_while_open_and_recovers(http_session):
    stub = RetrieverStub()
    stub.faults.extend([Fault(status=502)] * 3)
    async with serve(stub.app()) as url:
        cfg = fast_search_cfg(retries=0, breaker_failures=3, breaker_reset_s=0.2, cache=False)
        stack = build_search_backend(LocalBackendConfig(urls=[url]), cfg, session=http_session)
        failures = [await stack.search("Paris", 1) for _ in range(3)]
        assert all(r.failed and "HTTP 502" in r.error for r in failures)
        fast = await stack.search("Paris", 1)
        assert fast.failed and "circuit breaker is open" in fast.error
        assert len(stub.requests) == 3  # the fast failure never reached the server
        metrics = stack.stats_and_reset()
        assert metrics["search/breaker_open"] == 1.0 and metrics["search/breaker_rejected"] == 1.0
        await asyncio.sleep(0.25)
        probe = await stack.search("Paris", 1)
        assert not probe.failed and stack.breaker.state == "closed"
        assert not (await stack.search("Berlin", 1)).failed
    assert stack.stats_and_reset()["search/breaker_open"] == 0.0


async def test_query_specific_rejections_do_not_open_the_breaker(http_session):
    stub = RetrieverStub()
    stub.faults.extend([Fault(status=413)] * 3)
    async with serve(stub.app()) as url:
        cfg = fast_search_cfg(retries=0, breaker_failures=2, cache=False)
        stack = build_search_backend(LocalBackendConfig(urls=[url]), cfg, session=http_session)
        for _ in range(3):
            assert (await stack.search("very long query", 1)).failed
        assert not (await stack.search("Paris", 1)).failed
    assert stack.breaker.trips == 0
