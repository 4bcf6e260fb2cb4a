"""The streamed BM25 build writes exactly the index bm25s builds in memory, chunk size whatever."""

import json
import random

import numpy as np
import pytest

from searchr1.retriever import bm25_build
from searchr1.retriever.bm25_build import bm25_tokenizer, build_bm25
from searchr1.retriever.corpus import Corpus
from tests.support.retriever import write_corpus

WORDS = [
    "river",
    "capital",
    "mountain",
    "planet",
    "music",
    "war",
    "king",
    "city",
    "France",
    "Nile",
    "program",
    "language",
    "ocean",
    "island",
    "bridge",
    "north",
    "empire",
    "science",
    "painter",
    "novel",
]


def _passages(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = rng.choices(WORDS, weights=[1 / (r + 1) for r in range(len(WORDS))], k=rng.randint(1, 30))
        rows.append({"id": f"doc-{i}", "contents": f'"{words[0].title()}"\n{" ".join(words)}'})
    rows[3]["contents"] = ""  # no tokens at all
    rows[5]["contents"] = "the of and a"  # stopwords only
    return rows


def _bm25s_in_memory(contents: list[str], out_dir):
    import bm25s

    tokenizer = bm25_tokenizer()
    ids = tokenizer.tokenize(contents, update_vocab=True, return_as="ids", show_progress=False)
    model = bm25s.BM25()
    model.index((ids, tokenizer.get_vocab_dict()), show_progress=False)
    model.save(str(out_dir), show_progress=False)


@pytest.mark.parametrize("chunk_docs", [7, 1000])
def test_streamed_build_equals_bm25s_in_memory_index(tmp_path, monkeypatch, chunk_docs):
    monkeypatch.setattr(bm25_build, "_CHUNK_DOCS", chunk_docs)
    corpus_path = write_corpus(tmp_path / "c.jsonl", _passages(250))
    corpus = Corpus(corpus_path)
    build_bm25(corpus, tmp_path / "ours", show_progress=False)
    _bm25s_in_memory([corpus.row(i)["contents"] for i in range(len(corpus))], tmp_path / "ref")

    for name in ("indptr", "indices"):
        ours, ref = (np.load(tmp_path / d / f"{name}.csc.index.npy") for d in ("ours", "ref"))
        assert np.array_equal(ours, ref), name
    ours, ref = (np.load(tmp_path / d / "data.csc.index.npy") for d in ("ours", "ref"))
    assert ours.dtype == ref.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    for name in ("vocab.index.json", "params.index.json"):
        assert json.loads((tmp_path / "ours" / name).read_text()) == json.loads((tmp_path / "ref" / name).read_text())
    assert not list((tmp_path / "ours").glob("*.tmp"))  # the spill files are gone


def test_streamed_index_loads_in_bm25s_and_ranks_like_it(tmp_path):
    import bm25s

    corpus = Corpus(write_corpus(tmp_path / "c.jsonl", _passages(120, seed=1)))
    build_bm25(corpus, tmp_path / "ours", show_progress=False)
    model = bm25s.BM25.load(str(tmp_path / "ours"), mmap=True)
    tokenizer = bm25_tokenizer()
    tokenizer.load_vocab(str(tmp_path / "ours"))
    query = tokenizer.tokenize(["Nile river island"], update_vocab=False, return_as="tuple", show_progress=False)
    rows, scores = model.retrieve(query, k=5, show_progress=False)
    assert scores[0, 0] > 0 and "nile" in corpus.row(int(rows[0, 0]))["contents"].lower()


def test_an_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "c.jsonl").write_text("")
    corpus = Corpus(tmp_path / "c.jsonl")
    with pytest.raises(ValueError, match="has no passages"):
        build_bm25(corpus, tmp_path / "ours", show_progress=False)
