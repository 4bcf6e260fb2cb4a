"""The real retrieval server on 127.0.0.1, spoken to in Search-R1's wire format with plain HTTP."""

import asyncio
import gzip
import json
import socket
import time
import urllib.request
import zlib
from dataclasses import replace

import aiohttp
import pytest

from searchr1.retriever.connections import ClientErrorLog
from searchr1.retriever.embedded import EmbeddedRetriever
from searchr1.retriever.server import RequestError, decode_body
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


# --------------------------------------------------------------------------- HTTP over raw sockets
# What a hostile or broken client can send: each case is bytes on a fresh 127.0.0.1 connection.

HEAD_TIMEOUT_S = 0.5
GUARDED_CFG = replace(
    TEST_CFG, header_timeout_s=HEAD_TIMEOUT_S, body_timeout_s=HEAD_TIMEOUT_S, idle_timeout_s=3.0, max_idle_connections=4
)
SLACK_S = 5.0  # a loaded 2-core machine may take this long to notice a timer


def _start(corpus, cfg, log_path):
    server = EmbeddedRetriever(corpus, cfg, log_path=log_path)
    server.start()
    return server


@pytest.fixture(scope="module")
def errors_server(retriever_servers, retriever_corpus, tmp_path_factory):
    """A server of its own, so that the rate-limited log has seen no other test's errors."""
    server = _start(retriever_corpus, TEST_CFG, tmp_path_factory.mktemp("errors") / "retriever.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guarded_server(retriever_servers, retriever_corpus, tmp_path_factory):
    """Short read timeouts and an idle cap of 4, so that tests can cross them in a second."""
    server = _start(retriever_corpus, GUARDED_CFG, tmp_path_factory.mktemp("guarded") / "retriever.log")
    yield server
    server.stop()


def _address(server):
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _connect(server, timeout=10.0):
    return socket.create_connection(_address(server), timeout=timeout)


def _post(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in ("POST /retrieve HTTP/1.1", "Host: 127.0.0.1", *headers))
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _read_response(sock):
    """(status, lower-cased headers, body) of one response, read by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split(" ")[1]), headers, body


def _closed_by_server(sock, within_s):
    """Whether the server closes the connection within ``within_s`` (a bounded wait)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        return False
    except ConnectionResetError:
        pass
    return True


def _exchange(server, raw: bytes, shut_write=False):
    with _connect(server) as sock:
        sock.sendall(raw)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        return _read_response(sock)


class LogWatch:
    """The lines a server logs from now on."""

    def __init__(self, server):
        self.path = server.log_path
        self.start = self.path.stat().st_size

    def lines(self, settle_s=0.2):
        time.sleep(settle_s)  # the server logs before it answers; this covers a lagging flush
        with open(self.path, "rb") as log:
            log.seek(self.start)
            return log.read().decode(errors="replace").splitlines()


def _assert_json_error(status, headers, body, expected_status, needle):
    assert status == expected_status and headers["content-type"].startswith("application/json")
    message = json.loads(body)["error"]
    assert needle in message and "\n" not in message and len(message) < 300


BAD_BODY = b"this is no compressed data at all"


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_garbage_compressed_body_gets_a_json_400_and_one_log_line(errors_server, coding):
    watch = LogWatch(errors_server)
    status, headers, body = _exchange(errors_server, _post(BAD_BODY, f"Content-Encoding: {coding}"))
    _assert_json_error(status, headers, body, 400, f"not valid {coding} data")
    (line,) = watch.lines()
    assert "WARNING" in line and "400" in line and coding in line


HTTP_ERRORS = {
    "bad Content-Length": (
        b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        400,
        "Content-Length",
    ),
    "garbage request line": (b"HELLO THERE\r\n\r\n", 400, "bad HTTP request"),
    "100 KB header": (b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 400, "bad HTTP request"),
    "brotli body": (_post(b"\x0b\x02\x80{}\x03", "Content-Encoding: br"), 415, "'br' is not supported"),
}


@pytest.mark.parametrize("case", list(HTTP_ERRORS))
def test_http_level_errors_get_a_json_4xx_and_one_log_line_without_traceback(errors_server, case):
    raw, expected, needle = HTTP_ERRORS[case]
    watch = LogWatch(errors_server)
    status, headers, body = _exchange(errors_server, raw)
    _assert_json_error(status, headers, body, expected, needle)
    (line,) = watch.lines()
    assert "WARNING" in line and str(expected) in line and "a" * 200 not in line


def test_a_client_flooding_bad_requests_cannot_flood_the_log(errors_server):
    """Runs after the single-error tests above (file order): the limit holds whatever came before."""
    watch = LogWatch(errors_server)
    for _ in range(100):
        assert _exchange(errors_server, HTTP_ERRORS["bad Content-Length"][0])[0] == 400
    lines = watch.lines()
    assert len(lines) <= ClientErrorLog().burst and not any("Traceback" in line for line in lines)
    assert get_json(errors_server.url + "/health")["status"] == "ok"


def test_the_error_log_drops_lines_beyond_its_burst_and_counts_them(caplog):
    now = [0.0]
    report = ClientErrorLog(burst=2, window_s=10.0, clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="searchr1.retriever.connections"):
        for i in range(5):
            report(f"error {i}")
        now[0] = 10.0
        report("error 5")
    assert [r.getMessage() for r in caplog.records] == [
        "error 0",
        "error 1",
        "error 5 (3 more client errors not logged)",
    ]


def test_gzip_and_deflate_bodies_are_decoded():
    payload = b'{"queries": ["q"]}'
    assert decode_body(gzip.compress(payload), "gzip", 1024) == payload
    assert decode_body(zlib.compress(payload), "Deflate", 1024) == payload
    assert decode_body(payload, "identity", 1024) == payload


@pytest.mark.parametrize(
    "body, coding, status, needle",
    [
        (gzip.compress(b" " * 5000), "gzip", 413, "decoded body is above the limit"),  # a small bomb
        (gzip.compress(b"{}")[:-6], "gzip", 400, "ends before"),
        (b"{}", "zstd", 415, "'zstd' is not supported"),
    ],
    ids=["gzip-bomb", "gzip-truncated", "zstd"],  # gzip's header holds the time: ids from bodies differ per worker
)
def test_bad_compressed_bodies_are_refused(body, coding, status, needle):
    with pytest.raises(RequestError, match=needle) as err:
        decode_body(body, coding, 1024)
    assert err.value.status == status


def test_a_compressed_request_is_answered(bm25_server):
    body = gzip.compress(json.dumps({"queries": ["capital of Japan"], "topk": 1}).encode())
    status, _, answer = _exchange(bm25_server, _post(body, "Content-Encoding: gzip"))
    assert status == 200 and _title(json.loads(answer)["result"][0][0]) == "Tokyo"


@pytest.mark.parametrize("split", [False, True])
def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(bm25_server, split):
    raw = _post(json.dumps({"queries": ["who wrote Hamlet"], "topk": 1}).encode())
    with _connect(bm25_server) as sock:
        if split:  # head first, body in a second packet
            head, body = raw.split(b"\r\n\r\n", 1)
            sock.sendall(head + b"\r\n\r\n")
            time.sleep(0.1)
            sock.sendall(body)
        else:
            sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        status, _, answer = _read_response(sock)
        assert status == 200 and _title(json.loads(answer)["result"][0][0]) == "Shakespeare"
        assert _closed_by_server(sock, SLACK_S)


def test_a_partial_head_is_closed_with_408_after_the_header_timeout(guarded_server):
    with _connect(guarded_server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Le")
        status, headers, body = _read_response(sock)
        waited = time.monotonic() - started
        _assert_json_error(status, headers, body, 408, "retriever.header_timeout_s")
        assert headers["connection"] == "close" and _closed_by_server(sock, SLACK_S)
    assert HEAD_TIMEOUT_S * 0.9 <= waited < HEAD_TIMEOUT_S + SLACK_S


def test_a_partial_body_is_closed_with_408_after_the_body_timeout(guarded_server):
    with _connect(guarded_server) as sock:
        sock.sendall(_post(b'{"queries": ["q"]}')[:-5])
        status, headers, body = _read_response(sock)
        _assert_json_error(status, headers, body, 408, "retriever.body_timeout_s")
        assert headers["connection"] == "close" and _closed_by_server(sock, SLACK_S)


def test_a_head_sent_slowly_within_the_timeout_is_answered(guarded_server):
    raw = _post(json.dumps({"queries": ["capital of Japan"], "topk": 1}).encode())
    with _connect(guarded_server) as sock:
        for i in range(0, len(raw), len(raw) // 3 + 1):
            sock.sendall(raw[i : i + len(raw) // 3 + 1])
            time.sleep(HEAD_TIMEOUT_S / 5)
        assert _read_response(sock)[0] == 200


def test_an_idle_keep_alive_connection_gets_no_408_and_is_closed_after_the_idle_timeout(guarded_server):
    request = _post(json.dumps({"queries": ["Tokyo"], "topk": 1}).encode())
    with _connect(guarded_server) as sock:
        sock.sendall(request + request)  # pipelined
        assert [_read_response(sock)[0] for _ in range(2)] == [200, 200]
        time.sleep(HEAD_TIMEOUT_S * 3)  # idle, not a head arriving: no timer
        sock.sendall(request)
        assert _read_response(sock)[0] == 200
        assert not _closed_by_server(sock, GUARDED_CFG.idle_timeout_s / 3)
        assert _closed_by_server(sock, GUARDED_CFG.idle_timeout_s + SLACK_S)


def test_many_connections_holding_partial_heads_are_all_closed(guarded_server):
    socks = [_connect(guarded_server) for _ in range(40)]
    try:
        for sock in socks:
            sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
        deadline = time.monotonic() + HEAD_TIMEOUT_S + SLACK_S
        assert all(_closed_by_server(sock, max(deadline - time.monotonic(), 0.01)) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    assert get_json(guarded_server.url + "/health")["status"] == "ok"


def test_idle_connections_beyond_the_cap_are_closed_longest_idle_first(guarded_server):
    time.sleep(0.2)  # the server has seen earlier tests' connections close
    cap = GUARDED_CFG.max_idle_connections
    socks = []
    try:
        for _ in range(2 * cap):
            socks.append(_connect(guarded_server))
            time.sleep(0.05)  # accepted in this order
        assert all(_closed_by_server(sock, SLACK_S) for sock in socks[:cap])
        assert not any(_closed_by_server(sock, 0.2) for sock in socks[cap:])
    finally:
        for sock in socks:
            sock.close()
    assert get_json(guarded_server.url + "/health")["status"] == "ok"
