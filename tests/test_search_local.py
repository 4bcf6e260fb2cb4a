"""The local backend against a real Search-R1-format retriever on 127.0.0.1, healthy and faulty."""

import time

import pytest

from searchr1.config.checks import ConfigError
from searchr1.config.schema import LocalBackendConfig
from searchr1.search.factory import build_search_backend
from searchr1.search.fetcher import MalformedResponseError
from searchr1.search.local import parse_retrieve_response, retrieve_url
from searchr1.search.render import render_observation
from tests.support.search_servers import Fault, RetrieverStub, fast_search_cfg, malformed_bodies, refused_url, serve


def local_stack(session, urls, **search):
    return build_search_backend(LocalBackendConfig(urls=list(urls)), fast_search_cfg(**search), session=session)


async def test_retrieves_ranked_passages_in_search_r1_format(http_session):
    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        result = await local_stack(http_session, [url]).search("capital of France", 2)
    assert not result.failed
    assert [p.id for p in result.passages][0] == "0"
    assert len(result.passages) == 2
    assert result.passages[0].contents.startswith('"Paris"\n') and result.passages[0].score > 0
    assert stub.requests == [{"queries": ["capital of France"], "topk": 2, "return_scores": True}]
    assert render_observation(result, "x").startswith('\n\n<information>Doc 1(Title: "Paris") Paris is the capital')


def test_parses_scored_bare_bm25_and_string_hits():
    doc = {"id": 7, "contents": '"A"\ntext'}
    bm25_doc = {"title": "A", "text": "text", "contents": '"A"\ntext'}
    body = {"result": [[{"document": doc, "score": 1.5}, doc, bm25_doc, '"A"\ntext']]}
    passages = parse_retrieve_response(body, "u")
    assert [p.contents for p in passages] == ['"A"\ntext'] * 4
    assert (passages[0].id, passages[0].score) == ("7", 1.5)
    assert (passages[2].id, passages[2].score) == (None, None)


@pytest.mark.parametrize(
    "body",
    [
        {"results": []},
        {"result": []},
        {"result": [[{"document": {"title": "x"}}]]},
        [1],
        {"result": [[{"contents": "a"}], [{"contents": "b"}]]},
    ],
)  # two lists for one query
def test_wrong_shapes_are_malformed(body):
    with pytest.raises(MalformedResponseError):
        parse_retrieve_response(body, "u")


def test_base_and_full_urls_both_work():
    assert retrieve_url("http://h:8000/") == "http://h:8000/retrieve"
    assert retrieve_url("http://h:8000/retrieve") == "http://h:8000/retrieve"


async def test_round_robin_over_replicas(http_session):
    stubs = [RetrieverStub(), RetrieverStub()]
    async with serve(stubs[0].app()) as url_a, serve(stubs[1].app()) as url_b:
        stack = local_stack(http_session, [url_a, url_b], cache=False)
        for query in ("a", "b", "c", "d"):
            assert not (await stack.search(query, 1)).failed
    assert [len(s.requests) for s in stubs] == [2, 2]


async def test_dead_replica_costs_one_retry_not_the_search(http_session):
    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        stack = local_stack(http_session, [refused_url(), url], retries=1)
        result = await stack.search("Nile river", 1)
    assert not result.failed and result.passages[0].id == "3"
    assert stack.stats.retries == 1


async def test_retriever_down_returns_failed_result_after_all_retries(http_session):
    stack = local_stack(http_session, [refused_url()], retries=2)
    result = await stack.search("anything", 3)
    assert result.failed and "cannot reach" in result.error and "after 3 attempts" in result.error
    assert stack.stats.retries == 2
    assert stack.stats_and_reset()["search/failure_rate"] == 1.0


async def test_502s_then_success_is_retried(http_session):
    stub = RetrieverStub()
    stub.faults.extend([Fault(status=502, body="bad gateway"), Fault(status=502, body="bad gateway")])
    async with serve(stub.app()) as url:
        stack = local_stack(http_session, [url], retries=3)
        result = await stack.search("Berlin", 1)
    assert not result.failed and result.passages[0].id == "1"
    assert len(stub.requests) == 3 and stack.stats.retries == 2


async def test_persistent_5xx_gives_up_after_the_configured_retries(http_session):
    stub = RetrieverStub()
    stub.faults.extend([Fault(status=503)] * 5)
    async with serve(stub.app()) as url:
        result = await local_stack(http_session, [url], retries=1).search("Berlin", 1)
    assert result.failed and "HTTP 503" in result.error
    assert len(stub.requests) == 2


async def test_slow_answers_time_out_and_fail(http_session):
    stub = RetrieverStub()
    stub.faults.extend([Fault(delay_s=1.5), Fault(delay_s=1.5)])
    async with serve(stub.app()) as url:
        stack = local_stack(http_session, [url], timeout_s=0.1, retries=1)
        start = time.perf_counter()
        result = await stack.search("Paris", 1)
        elapsed = time.perf_counter() - start
    assert result.failed and "within 0.1s" in result.error
    assert len(stub.requests) == 2
    assert elapsed < 1.2  # two 0.1 s timeouts, never the 1.5 s answers


async def test_a_slow_first_answer_is_retried_into_a_success(http_session):
    stub = RetrieverStub()
    stub.faults.append(Fault(delay_s=0.4))
    async with serve(stub.app()) as url:
        result = await local_stack(http_session, [url], timeout_s=0.1, retries=1).search("Paris", 1)
    assert not result.failed and result.passages[0].id == "0"


async def test_4xx_is_not_retried(http_session):
    stub = RetrieverStub()
    stub.faults.append(Fault(status=413, body='{"detail": "query too long"}'))
    async with serve(stub.app()) as url:
        stack = local_stack(http_session, [url], retries=3)
        result = await stack.search("Paris", 1)
    assert result.failed and "HTTP 413" in result.error and "query too long" in result.error
    assert len(stub.requests) == 1 and stack.stats.retries == 0


@pytest.mark.parametrize("body", malformed_bodies())
async def test_malformed_bodies_fail_without_retry(http_session, body):
    stub = RetrieverStub()
    stub.faults.append(Fault(status=200, body=body))
    async with serve(stub.app()) as url:
        stack = local_stack(http_session, [url], retries=3)
        result = await stack.search("Paris", 1)
    assert result.failed and result.passages == ()
    assert len(stub.requests) == 1


async def test_no_url_is_a_config_error(http_session):
    with pytest.raises(ConfigError, match="backend.urls"):
        local_stack(http_session, [])


async def test_urls_argument_overrides_backend_urls(http_session):
    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        stack = build_search_backend(
            LocalBackendConfig(urls=[refused_url()]), fast_search_cfg(retries=0), session=http_session, urls=[url]
        )
        assert not (await stack.search("Paris", 1)).failed


async def test_a_stuck_search_fails_at_the_deadline_and_is_counted(http_session):
    """Four 0.25 s timeouts in a row would hold a trajectory for 1 s and more; the deadline ends it at 0.3 s."""
    stub = RetrieverStub()
    stub.faults.extend([Fault(delay_s=1.5)] * 4)
    async with serve(stub.app()) as url:
        stack = local_stack(http_session, [url], timeout_s=0.25, retries=3, deadline_s=0.3)
        start = time.perf_counter()
        result = await stack.search("Paris", 1)
        elapsed = time.perf_counter() - start
    assert result.failed and "search.deadline_s=0.3" in result.error
    assert elapsed < 1.0
    metrics = stack.stats_and_reset()
    assert metrics["search/deadline_hits"] == 1.0 and metrics["search/failure_rate"] == 1.0
    assert stack.stats_and_reset()["search/deadline_hits"] == 0.0
