"""Answers are a function of (query, topk, index): neither other clients' requests in the same
micro-batch nor the size of one's own request changes them. Real server, real BM25 index over the
synthetic encyclopedia (whose short, same-shape passages tie often), default request limits."""

import asyncio

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from searchr1.config.schema import RetrieverConfig
from searchr1.retriever.embedded import EmbeddedRetriever
from tests.support.retriever import post_json

pytestmark = pytest.mark.slow  # starts a server process

SEARCH_R1_LARGEST_BATCH = 512 * 5  # their GRPO recipe: train_batch_size=512 x n_agent=5
# Defaults (max_queries, max_batch_size) as shipped; a long wait so that concurrent requests share batches.
CFG = RetrieverConfig(kind="bm25", max_wait_ms=20.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from searchr1.data.synthetic import generate

    book = generate(0, 2000)
    corpus = tmp_path_factory.mktemp("determinism") / "corpus.jsonl"
    corpus.write_text("\n".join(book.corpus_lines()) + "\n")
    queries = ["poet", "river", "capital city", "painter born"] + [q.text for q in book.train[:60]]
    with EmbeddedRetriever(corpus, CFG, log_path=corpus.with_name("retriever.log")) as retriever:
        yield retriever.url, queries


def _ids(result_row):
    return [hit["document"]["id"] for hit in result_row]


def test_search_r1_sized_request_is_answered_in_pieces_like_single_queries(server):
    url, queries = server
    batch = [queries[i % len(queries)] for i in range(SEARCH_R1_LARGEST_BATCH)]
    status, body = post_json(url + "/retrieve", {"queries": batch, "topk": 3, "return_scores": True}, timeout=120)
    assert status == 200 and len(body["result"]) == SEARCH_R1_LARGEST_BATCH
    for i in range(len(queries)):
        alone = post_json(url + "/retrieve", {"queries": [queries[i]], "topk": 3, "return_scores": True})[1]
        assert _ids(body["result"][i]) == _ids(alone["result"][0])
    from tests.support.retriever import get_json

    assert get_json(url + "/metrics")["batch"]["max_size"] <= CFG.max_batch_size


requests = st.lists(
    st.tuples(st.integers(0, 63), st.sampled_from([1, 2, 3, 5, 10, 100]), st.integers(1, 4)), min_size=2, max_size=24
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mix=requests)
def test_any_mix_of_concurrent_requests_returns_what_each_returns_alone(server, mix):
    url, queries = server
    alone = {}
    for start, topk, n in mix:
        for q in queries[start : start + n]:
            if (q, topk) not in alone:
                status, body = post_json(url + "/retrieve", {"queries": [q], "topk": topk, "return_scores": True})
                assert status == 200
                alone[q, topk] = _ids(body["result"][0])

    async def all_at_once():
        async with aiohttp.ClientSession() as session:

            async def ask(start, topk, n):
                payload = {"queries": queries[start : start + n], "topk": topk, "return_scores": True}
                async with session.post(url + "/retrieve", json=payload) as resp:
                    return (await resp.json())["result"]

            return await asyncio.gather(*(ask(*request) for request in mix))

    for (start, topk, n), result in zip(mix, asyncio.run(all_at_once())):
        assert [_ids(row) for row in result] == [alone[q, topk] for q in queries[start : start + n]]
