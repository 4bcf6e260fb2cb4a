"""EmbeddedRetriever: builds once, serves on a free 127.0.0.1 port, reports failures with the log tail, stops."""

import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from searchr1.retriever.embedded import EmbeddedRetriever, RetrieverStartError
from searchr1.retriever.index import resolve_index_dir
from tests.support.retriever import TEST_CFG, get_json, post_json, write_corpus

pytestmark = pytest.mark.slow  # starts server processes


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_lifecycle_builds_serves_and_stops(tmp_path):
    corpus = write_corpus(tmp_path / "wiki.jsonl")
    with EmbeddedRetriever(corpus, TEST_CFG, log_path=tmp_path / "logs" / "retriever.log") as retriever:
        assert retriever.url.startswith("http://127.0.0.1:") and not retriever.url.endswith(":0")
        assert get_json(retriever.url + "/health")["status"] == "ok"
        status, body = post_json(retriever.url + "/retrieve", {"queries": ["capital of Germany"], "topk": 1})
        assert status == 200 and body["result"][0][0]["id"] == "doc-1"
        url = retriever.url
    assert not _port_open(url)
    assert (resolve_index_dir(corpus, TEST_CFG) / "searchr1-index.json").is_file()  # cached next to the corpus
    assert (tmp_path / "logs" / "retriever.log").read_text()

    # A second start reuses the cached index and can be given a fixed port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with EmbeddedRetriever(corpus, TEST_CFG, port=port) as again:
        assert again.url == f"http://127.0.0.1:{port}"
        assert "not rebuilding" not in again.log_tail() and "built bm25" not in again.log_tail()


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(RetrieverStartError, match="corpus not found"):
        EmbeddedRetriever(tmp_path / "nope.jsonl", TEST_CFG).start()


def test_broken_corpus_error_carries_the_log_tail(tmp_path):
    corpus = tmp_path / "broken.jsonl"
    corpus.write_text('{"id": "0", "contents": "ok"}\n{this is not json}\n')
    retriever = EmbeddedRetriever(corpus, TEST_CFG, log_path=tmp_path / "r.log")
    with pytest.raises(RetrieverStartError, match=r"exited with code [1-9].*row 1 is not valid JSON") as failed:
        retriever.start()
    assert retriever.url == "" and "\n" not in str(failed.value) and str(tmp_path / "r.log") in str(failed.value)


def test_a_busy_port_fails_fast_with_the_reason(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(RetrieverStartError, match="address already in use"):
            EmbeddedRetriever(corpus, replace(TEST_CFG, max_wait_ms=0.0), port=port).start()


def test_server_stops_when_its_parent_is_killed(tmp_path):
    """A trainer that dies by SIGKILL leaves no retriever behind."""
    corpus = write_corpus(tmp_path / "c.jsonl")
    port_file = tmp_path / "port"
    script = (
        "import sys, time\n"
        "from searchr1.retriever.embedded import EmbeddedRetriever\n"
        "from tests.support.retriever import TEST_CFG\n"
        f"r = EmbeddedRetriever({str(corpus)!r}, TEST_CFG).__enter__()\n"
        f"open({str(port_file)!r}, 'w').write(r.url)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 120
        while not port_file.is_file() or not port_file.read_text():
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        url = port_file.read_text()
        assert _port_open(url)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while _port_open(url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _port_open(url)


def test_run_retriever_starts_one_only_when_the_run_needs_it(tmp_path):
    from searchr1.config import to_typed
    from searchr1.retriever.embedded import run_retriever
    from tests.support.compose import compose_config

    for overrides in (
        ["backend=google"],
        ["backend.urls=[http://127.0.0.1:9]"],
        ["search.replay_path=/tmp/none.jsonl"],
    ):
        with run_retriever(to_typed(compose_config(overrides)), tmp_path) as urls:
            assert urls is None, overrides


def test_a_retriever_that_cannot_start_ends_a_run_in_one_line(tmp_path):
    """Through a real CLI (searchr1-eval starts its retriever before loading a model): exit 2, one
    error line with the retriever's own last words, no traceback."""
    import subprocess
    import sys

    from tests.support.data import SMALL_ENTITIES

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code = "import sys; from searchr1.eval.cli import main; sys.argv[0] = 'searchr1-eval'; main()"
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                f"backend.embedded_port={port}",
                f"data.num_entities={SMALL_ENTITIES}",
                f"hydra.run.dir={tmp_path / 'run'}",
                "logger.mode=disabled",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert done.returncode == 2 and "Traceback" not in output, output[-3000:]
    assert len(errors) == 1 and errors[0].startswith("searchr1-eval: error: "), output[-3000:]
    assert "embedded retriever failed" in errors[0] and "address already in use" in errors[0]
