"""``searchr1-retriever``: every RetrieverConfig field is a flag, and errors are one line."""

import re
from types import SimpleNamespace

import pytest

from searchr1.config.schema import RetrieverConfig
from searchr1.retriever import flags
from searchr1.retriever.cli import _parser, main, search_workers
from searchr1.retriever.flags import config_from, config_to_args
from tests.support.retriever import write_corpus


@pytest.mark.parametrize(
    "cfg",
    [
        RetrieverConfig(),
        RetrieverConfig(
            kind="dense",
            encoder="intfloat/e5-base-v2",
            query_prefix="query: ",
            passage_prefix="passage: ",
            faiss_gpu=False,
            index_dir="/data/e5_Flat.index",
            max_wait_ms=0.5,
            max_batch_size=1,
            search_workers=3,
        ),
    ],
)
def test_config_round_trips_through_flags(cfg, monkeypatch):
    # The embedded retriever's child gets every field (null as an empty value): it composes no config.
    monkeypatch.setattr(flags, "kind_defaults", lambda kind: pytest.fail("the child composed a config"))
    ns = _parser().parse_args(["serve", "--corpus=c.jsonl", *config_to_args(cfg)])
    assert config_from(ns) == cfg


def test_a_flag_left_out_takes_the_kinds_option_value():
    ns = _parser().parse_args(["serve", "--corpus=c.jsonl", "--kind=dense", "--index-dir="])
    assert (config_from(ns).search_workers, config_from(ns).index_dir) == (2, None)  # retriever=dense's 2


def test_build_prints_the_index_dir_and_is_idempotent(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c.jsonl")
    main(["build", f"--corpus={corpus}", "--quiet"])
    main(["build", f"--corpus={corpus}", "--quiet"])
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "c.bm25")] * 2


def _refused(capsys, argv: list[str]) -> str:
    """The line ``main(argv)`` refuses with (exit 2), after any progress bar."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    line = capsys.readouterr().err.splitlines()[-1]
    assert exited.value.code == 2 and line.startswith("searchr1-retriever: error: "), line
    return line


def test_serve_without_an_index_says_how_to_build_it(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c.jsonl")
    assert re.search(
        "no bm25 index at .*searchr1-retriever build", _refused(capsys, ["serve", f"--corpus={corpus}", "--port=0"])
    )


def test_bad_config_value_is_one_line(tmp_path, capsys):
    corpus = f"--corpus={tmp_path / 'c.jsonl'}"
    assert "retriever.max_wait_ms=-1.0 is out of range" in _refused(capsys, ["build", corpus, "--max-wait-ms=-1"])
    assert "retriever.search_workers=0 is out of range" in _refused(capsys, ["build", corpus, "--search-workers=0"])


def test_an_index_only_one_thread_may_search_gets_one_worker():
    cfg = RetrieverConfig(kind="dense", search_workers=3)
    assert search_workers(cfg, SimpleNamespace(thread_safe=True)) == 3
    assert search_workers(cfg, SimpleNamespace(thread_safe=False)) == 1  # FAISS on GPU


def test_index_with_a_different_row_count_is_refused(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c.jsonl")
    main(["build", f"--corpus={corpus}", "--quiet"])
    other = write_corpus(tmp_path / "other.jsonl", [{"id": "0", "contents": '"A"\na'}])
    argv = ["serve", f"--corpus={other}", f"--index-dir={tmp_path / 'c.bm25'}", "--port=0"]
    assert re.search("holds 20 passages but corpus .* has 1", _refused(capsys, argv))
