"""Record a run's searches, then replay the file offline with identical results."""

import json

import pytest

from searchr1.config.checks import ConfigError
from searchr1.config.schema import LocalBackendConfig
from searchr1.search.factory import build_search_backend
from searchr1.search.record import RECORD_FILE
from tests.support.search_servers import Fault, RetrieverStub, fast_search_cfg, refused_url, serve

QUERIES = [("capital of France", 2), ("Nile river", 1), ("Berlin", 3), ("capital of France", 2), ("broken", 1)]


async def test_replay_serves_exactly_what_was_recorded_without_the_backend(http_session, tmp_path):
    stub = RetrieverStub()
    async with serve(stub.app()) as url:
        recording = build_search_backend(
            LocalBackendConfig(urls=[url]),
            fast_search_cfg(record=True, retries=0),
            session=http_session,
            run_dir=tmp_path,
        )
        original = [await recording.search(q, k) for q, k in QUERIES[:-1]]
        stub.faults.append(Fault(status=502))
        original.append(await recording.search(*QUERIES[-1]))
        await recording.close()
    assert original[-1].failed and not any(r.failed for r in original[:-1])
    lines = (tmp_path / RECORD_FILE).read_text().splitlines()
    assert len(lines) == len(QUERIES) and json.loads(lines[0])["backend"] == "local"

    # the retriever is gone: everything must come from the file
    replay = build_search_backend(
        LocalBackendConfig(urls=[refused_url()]),
        fast_search_cfg(replay_path=str(tmp_path / RECORD_FILE)),
        session=http_session,
    )
    replayed = [await replay.search(q, k) for q, k in QUERIES]
    assert [(r.passages, r.failed, r.error) for r in replayed] == [(r.passages, r.failed, r.error) for r in original]
    assert replay.stats_and_reset()["search/failure_rate"] == 1 / len(QUERIES)


async def test_replay_of_an_unrecorded_query_is_a_failed_result(http_session, tmp_path):
    path = tmp_path / RECORD_FILE
    path.write_text(json.dumps({"query": "a", "topk": 1, "failed": False, "error": None, "passages": []}) + "\n")
    replay = build_search_backend(LocalBackendConfig(), fast_search_cfg(replay_path=str(path)), session=http_session)
    result = await replay.search("a", 2)
    assert result.failed and "not in replay file" in result.error


def test_missing_or_corrupt_replay_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_search_backend(
            LocalBackendConfig(), fast_search_cfg(replay_path=str(tmp_path / "nope.jsonl")), session=None
        )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a"}\n')
    with pytest.raises(ConfigError, match="line 1"):
        build_search_backend(LocalBackendConfig(), fast_search_cfg(replay_path=str(bad)), session=None)


def test_record_needs_a_run_dir():
    with pytest.raises(ConfigError, match="search.record"):
        build_search_backend(LocalBackendConfig(urls=["http://x"]), fast_search_cfg(record=True), session=None)


async def test_a_failed_search_that_echoes_the_key_is_recorded_redacted(http_session, tmp_path, monkeypatch):
    from searchr1.config.schema import GoogleBackendConfig
    from tests.support.search_servers import FakeSerper

    key = "serper-key-0123456789"
    monkeypatch.setenv("SEARCHR1_TEST_SERPER_KEY", key)
    serper = FakeSerper(api_key=key)
    serper.faults.append(Fault(status=502, body=f"bad gateway; upstream saw headers X-API-KEY: {key}"))
    async with serve(serper.app()) as url:
        cfg = GoogleBackendConfig(endpoint=f"{url}/search", api_key_env="SEARCHR1_TEST_SERPER_KEY")
        stack = build_search_backend(
            cfg, fast_search_cfg(record=True, retries=0), session=http_session, run_dir=tmp_path
        )
        result = await stack.search("capital of France", 1)
        await stack.close()
    assert result.failed
    (line,) = (tmp_path / RECORD_FILE).read_text().splitlines()
    record = json.loads(line)
    assert record["failed"] and "X-API-KEY: ***" in record["error"]
    assert key not in line
