"""Our local backend against our real retrieval server (BM25 and dense) on 127.0.0.1."""

import asyncio

import pytest

from searchr1.config.schema import LocalBackendConfig
from searchr1.search.factory import build_search_backend
from searchr1.search.render import render_observation
from tests.support.search_servers import fast_search_cfg

pytestmark = pytest.mark.slow  # shares the retriever tests' session servers (torch import)

pytest_plugins = ["tests.support.retriever"]


@pytest.mark.parametrize("kind", ["bm25", "dense"])
async def test_top_hits_through_the_stack(http_session, retriever_servers, kind):
    stack = build_search_backend(
        LocalBackendConfig(urls=[retriever_servers[kind].url]), fast_search_cfg(timeout_s=10.0), session=http_session
    )
    queries = ["who wrote Hamlet", "highest mountain in the world", "capital of Japan"]
    results = await asyncio.gather(*(stack.search(q, 3) for q in queries))
    assert [r.passages[0].contents.split("\n")[0] for r in results] == ['"Shakespeare"', '"Mount Everest"', '"Tokyo"']
    # BM25 drops passages that share no term with the query, so up to topk
    assert all(1 <= len(r.passages) <= 3 and r.passages[0].id.startswith("doc-") for r in results)
    assert render_observation(results[0], "x").startswith('\n\n<information>Doc 1(Title: "Shakespeare") William')


async def test_server_limits_come_back_as_failed_results_without_retries(http_session, bm25_server):
    stack = build_search_backend(
        LocalBackendConfig(urls=[bm25_server.url]), fast_search_cfg(timeout_s=10.0, retries=3), session=http_session
    )
    result = await stack.search("x" * 500, 3)
    assert result.failed and "HTTP 4" in result.error and stack.stats.retries == 0
