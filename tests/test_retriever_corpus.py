"""Corpus row access by byte offsets: row numbers match a JSONL reader, offsets are cached and refreshed."""

import json

import numpy as np
import pytest

from searchr1.retriever.corpus import Corpus, offsets_path
from tests.support.retriever import corpus_rows, write_corpus


def test_rows_by_number_match_the_file(tmp_path):
    rows = corpus_rows()
    corpus = Corpus(write_corpus(tmp_path / "c.jsonl", rows))
    assert len(corpus) == len(rows)
    assert corpus.doc(0) == rows[0]
    assert corpus.docs([7, 3]) == [rows[7], rows[3]]
    assert corpus.doc(len(rows) - 1) == rows[-1]


def test_blank_lines_and_missing_trailing_newline(tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [json.dumps({"id": "a", "contents": '"A"\na'}), "", json.dumps({"id": "b", "contents": '"B"\nb'})]
    path.write_text("\n".join(lines))  # blank line in the middle, no newline at the end
    corpus = Corpus(path)
    assert [corpus.doc(i)["id"] for i in range(len(corpus))] == ["a", "b"]


def test_rows_without_id_are_named_by_row_number(tmp_path):
    path = write_corpus(tmp_path / "c.jsonl", [{"contents": '"A"\na'}, {"contents": '"B"\nb'}])
    assert Corpus(path).doc(1) == {"contents": '"B"\nb', "id": "1"}


def test_offsets_are_cached_and_rebuilt_when_the_file_changes(tmp_path):
    path = write_corpus(tmp_path / "c.jsonl")
    Corpus(path).close()
    cached = np.load(offsets_path(path))
    assert len(cached) == len(corpus_rows()) + 1 and cached[-1] == path.stat().st_size
    write_corpus(path, corpus_rows()[:3])
    assert len(Corpus(path)) == 3


def test_iter_contents_streams_in_order(tmp_path):
    corpus = Corpus(write_corpus(tmp_path / "c.jsonl"))
    batches = list(corpus.iter_contents(6, show_progress=False))
    assert [len(b) for b in batches] == [6, 6, 6, 2]
    assert sum(batches, []) == [row["contents"] for row in corpus_rows()]


@pytest.mark.parametrize("line", ["{not json}", '{"id": "x"}', "[1, 2]"])
def test_bad_rows_name_the_file_and_row(tmp_path, line):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "0", "contents": "ok"}\n' + line + "\n")
    with pytest.raises(ValueError, match=r"c.jsonl row 1 "):
        Corpus(path).doc(1)
