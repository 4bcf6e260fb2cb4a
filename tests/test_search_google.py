"""The google backend against a local server speaking serper.dev's wire format."""

import logging
import time

import pytest

from searchr1.config.checks import ConfigError
from searchr1.config.schema import GoogleBackendConfig
from searchr1.search.factory import build_search_backend
from searchr1.search.record import RECORD_FILE
from tests.support.search_servers import Fault, FakeSerper, fast_search_cfg, serve

KEY = "sk-test-7f3a9c1e5d"
ENV = "SEARCHR1_TEST_SERPER_KEY"


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    return KEY


def google_stack(session, url, **search):
    cfg = GoogleBackendConfig(endpoint=f"{url}/search", api_key_env=ENV, country="de", language="fr")
    return build_search_backend(cfg, fast_search_cfg(**search), session=session)


async def test_snippets_become_title_snippet_passages_and_topk_is_num(http_session, api_key):
    serper = FakeSerper(KEY)
    async with serve(serper.app()) as url:
        result = await google_stack(http_session, url).search("who wrote hamlet", 2)
    assert not result.failed
    assert [p.contents for p in result.passages] == [
        '"who wrote hamlet result 1"\nSnippet 1 about who wrote hamlet.',
        '"who wrote hamlet result 2"\nSnippet 2 about who wrote hamlet.',
    ]
    assert result.passages[0].id == "https://example.org/1"
    assert serper.requests == [{"q": "who wrote hamlet", "num": 2, "gl": "de", "hl": "fr"}]
    assert serper.headers_seen[0]["X-API-KEY"] == KEY


async def test_answer_box_comes_first_within_topk(http_session, api_key):
    serper = FakeSerper(KEY, answer_box=True)
    async with serve(serper.app()) as url:
        result = await google_stack(http_session, url).search("q", 3)
    assert len(result.passages) == 3
    assert result.passages[0].contents == '"Answer"\nThe answer to q'


async def test_credit_meter_counts_billed_searches_only(http_session, api_key):
    serper = FakeSerper(KEY)
    serper.faults.append(Fault(status=500))
    async with serve(serper.app()) as url:
        stack = google_stack(http_session, url)
        for query in ("a", "b", "a", "a"):
            await stack.search(query, 1)
    metrics = stack.stats_and_reset()
    assert metrics["search/credits_used"] == 2.0  # the 500 and the two cache hits cost nothing
    assert metrics["search/cache_hit_rate"] == 0.5
    assert stack.stats_and_reset()["search/credits_used"] == 0.0


async def test_429_waits_for_retry_after_then_succeeds(http_session, api_key):
    serper = FakeSerper(KEY)
    serper.faults.append(Fault(status=429, body='{"message": "Too many requests"}', headers={"Retry-After": "1"}))
    async with serve(serper.app()) as url:
        stack = google_stack(http_session, url, retries=2, backoff_s=0.0)
        start = time.perf_counter()
        result = await stack.search("q", 1)
        elapsed = time.perf_counter() - start
    assert not result.failed
    assert 0.95 <= elapsed < 2.5
    assert len(serper.requests) == 2 and stack.stats.retries == 1


async def test_retry_after_beyond_the_cap_fails_instead_of_stalling(http_session, api_key):
    serper = FakeSerper(KEY)
    serper.faults.append(Fault(status=429, headers={"Retry-After": "3600"}))
    async with serve(serper.app()) as url:
        start = time.perf_counter()
        result = await google_stack(http_session, url).search("q", 1)
    assert result.failed and "HTTP 429" in result.error
    assert time.perf_counter() - start < 0.5 and len(serper.requests) == 1


async def test_bad_key_is_an_auth_failure_that_is_not_retried(http_session, monkeypatch):
    monkeypatch.setenv(ENV, "wrong-key")
    serper = FakeSerper(KEY)
    async with serve(serper.app()) as url:
        stack = google_stack(http_session, url, retries=3)
        result = await stack.search("q", 1)
    assert result.failed and "rejected the API key" in result.error and f"${ENV}" in result.error
    assert "wrong-key" not in result.error
    assert len(serper.requests) == 1
    assert stack.stats_and_reset()["search/failure_rate"] == 1.0


@pytest.mark.parametrize("fault", [None, Fault(status=402, body='{"message": "Payment required"}')])
async def test_exhausted_credits_say_so(http_session, api_key, fault):
    serper = FakeSerper(KEY, credits=0)
    if fault:
        serper.faults.append(fault)
    async with serve(serper.app()) as url:
        result = await google_stack(http_session, url, retries=3).search("q", 1)
    assert result.failed and "out of credits" in result.error
    assert len(serper.requests) == 1


def test_missing_key_fails_at_build_time_naming_the_variable(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    cfg = GoogleBackendConfig(api_key_env=ENV)
    with pytest.raises(ConfigError, match=ENV):
        build_search_backend(cfg, fast_search_cfg(), session=object())


async def test_key_never_reaches_logs_repr_errors_or_the_record(http_session, api_key, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    serper = FakeSerper(KEY)
    serper.faults.extend([Fault(status=503), Fault(status=429, headers={"Retry-After": "0"}), Fault(status=403)])
    async with serve(serper.app()) as url:
        cfg = GoogleBackendConfig(endpoint=f"{url}/search", api_key_env=ENV)
        stack = build_search_backend(
            cfg, fast_search_cfg(retries=3, record=True, breaker_failures=1), session=http_session, run_dir=tmp_path
        )
        results = [await stack.search(q, 1) for q in ("first", "second")]
        await stack.close()
    # 503 and 429 were retried, the 403 opened the breaker, the second search failed fast
    assert "rejected the API key" in results[0].error and "circuit breaker is open" in results[1].error
    assert "circuit breaker open" in caplog.text and "retrying" in caplog.text
    text = caplog.text + repr(stack) + repr(results) + (tmp_path / RECORD_FILE).read_text()
    assert KEY not in text
