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
from tests.support.retriever import PASSAGES, post_json

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


def requests(max_start: int, topks: list[int]):
    """Mixes of (first query, topk, number of queries) requests to send all at once."""
    return st.lists(
        st.tuples(st.integers(0, max_start), st.sampled_from(topks), st.integers(1, 4)), min_size=2, max_size=24
    )


def assert_mix_answers_as_alone(url: str, queries: list[str], mix) -> None:
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


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mix=requests(63, [1, 2, 3, 5, 10, 100]))
def test_any_mix_of_concurrent_requests_returns_what_each_returns_alone(server, mix):
    url, queries = server
    assert_mix_answers_as_alone(url, queries, mix)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mix=requests(len(PASSAGES) - 1, [1, 2, 3, 5, 10]))
def test_dense_answers_do_not_depend_on_the_batch_either(dense_server, mix):
    """The dense server of tests/support (MiniLM, FAISS flat IP): same ids alone or batched."""
    assert_mix_answers_as_alone(dense_server.url, [text for _, text in PASSAGES], mix)
