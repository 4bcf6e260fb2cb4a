"""The real retrieval server on 127.0.0.1, spoken to in Search-R1's wire format with plain HTTP."""

import asyncio
import json
import urllib.request

import aiohttp
import pytest

from tests.support.retriever import PASSAGES, TEST_CFG, corpus_rows, get_json, post_json

pytestmark = pytest.mark.slow  # the session fixture starts two server processes (torch import)

ROWS = corpus_rows()


def _title(doc):
    return doc["contents"].split("\n")[0].strip('"')


@pytest.mark.parametrize("kind", ["bm25", "dense"])
@pytest.mark.parametrize(
    "query, title",
    [
        ("highest mountain in the world", "Mount Everest"),
        ("who wrote Hamlet", "Shakespeare"),
        ("capital of Japan", "Tokyo"),
    ],
)
def test_top_hit_with_scores(retriever_servers, kind, query, title):
    status, body = post_json(
        retriever_servers[kind].url + "/retrieve", {"queries": [query], "topk": 3, "return_scores": True}
    )
    assert status == 200 and list(body) == ["result"]
    (hits,) = body["result"]
    assert 1 <= len(hits) <= 3
    assert all(set(hit) == {"document", "score"} and isinstance(hit["score"], float) for hit in hits)
    assert _title(hits[0]["document"]) == title
    assert hits[0]["document"] == ROWS[[t for t, _ in PASSAGES].index(title)]  # the corpus row, unchanged
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("kind", ["bm25", "dense"])
def test_without_scores_hits_are_bare_documents_one_list_per_query(retriever_servers, kind):
    queries = ["Neil Armstrong on the Moon", "double helix molecule", "antibiotic discovered by Fleming"]
    status, body = post_json(
        retriever_servers[kind].url + "/retrieve", {"queries": queries, "topk": 2, "return_scores": False}
    )
    assert status == 200 and len(body["result"]) == 3
    assert [_title(hits[0]) for hits in body["result"]] == ["Moon landing", "DNA", "Penicillin"]
    assert all(set(doc) == {"id", "contents"} for hits in body["result"] for doc in hits)


def test_dense_returns_exactly_topk_and_default_topk(dense_server):
    _, body = post_json(dense_server.url + "/retrieve", {"queries": ["river in Africa"], "topk": 5})
    assert len(body["result"][0]) == 5
    _, body = post_json(dense_server.url + "/retrieve", {"queries": ["river in Africa"]})  # Search-R1's fallback
    assert len(body["result"][0]) == TEST_CFG.default_topk


def test_bm25_drops_documents_sharing_no_term(bm25_server):
    _, body = post_json(bm25_server.url + "/retrieve", {"queries": ["xylophone zeppelin"], "topk": 3})
    assert body == {"result": [[]]}


def test_empty_query_list(bm25_server):
    assert post_json(bm25_server.url + "/retrieve", {"queries": []}) == (200, {"result": []})


@pytest.mark.parametrize(
    "payload, status, needle",
    [
        (b'{"queries": ["unclosed"', 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        ([1, 2], 400, "JSON object"),
        ({"query": "wrong key"}, 422, "'queries'"),
        ({"queries": "not a list"}, 422, "'queries'"),
        ({"queries": ["ok", 3]}, 422, "'queries'"),
        ({"queries": ["q"] * 9}, 422, "limit is 8"),
        ({"queries": ["x" * 201]}, 422, "limit is 200"),
        ({"queries": ["q"], "topk": 11}, 422, "limit 10"),
        ({"queries": ["q"], "topk": -1}, 422, "'topk'"),
        ({"queries": ["q"], "topk": "3"}, 422, "'topk'"),
        ({"queries": ["q"], "topk": False}, 422, "got false"),  # not the default topk
        ({"queries": ["q"], "topk": True}, 422, "got true"),
        ({"queries": ["q"], "return_scores": "yes"}, 422, "'return_scores'"),
        ({"queries": ["y" * 150] * 8, "topk": 1}, 413, "limit"),  # > 1024 bytes
    ],
)
def test_bad_requests_get_a_clear_json_error(bm25_server, payload, status, needle):
    code, body = post_json(bm25_server.url + "/retrieve", payload)
    assert code == status
    assert list(body) == ["error"] and needle in body["error"] and "Traceback" not in body["error"]


def test_unknown_route_and_method_are_json_errors(bm25_server):
    for method, path, status in [("GET", "/nope", 404), ("GET", "/retrieve", 405)]:
        request = urllib.request.Request(bm25_server.url + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code == status and "error" in json.loads(err.value.read())


def test_health_names_the_index(retriever_servers):
    for kind, server in retriever_servers.items():
        health = get_json(server.url + "/health")
        assert health["status"] == "ok" and health["kind"] == kind and health["num_docs"] == len(ROWS)


async def test_concurrent_single_query_requests_are_batched(bm25_server):
    """64 clients in flight, one query each (how Miles calls us): /metrics must show shared batches."""
    before = get_json(bm25_server.url + "/metrics")
    titles = [t for t, _ in PASSAGES]
    async with aiohttp.ClientSession() as session:

        async def ask(i):
            query = PASSAGES[i % len(PASSAGES)][1]
            async with session.post(bm25_server.url + "/retrieve", json={"queries": [query], "topk": 1}) as resp:
                return (await resp.json())["result"][0][0]

        hits = await asyncio.gather(*(ask(i) for i in range(64)))
    assert [_title(h) for h in hits] == [titles[i % len(titles)] for i in range(64)]  # no answer crossed over
    after = get_json(bm25_server.url + "/metrics")
    batches = after["batch"]["batches"] - before["batch"]["batches"]
    assert after["requests"] - before["requests"] == 64
    assert batches < 32 and after["batch"]["max_size"] >= 4
    assert after["queue_depth"] == 0
    assert 0 < after["latency_ms"]["p50"] <= after["latency_ms"]["p99"]
