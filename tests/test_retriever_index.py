"""Index building and loading: BM25 (bm25s) and dense (FAISS IP, Search-R1's e5_Flat.index layout)."""

import threading
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from searchr1.config.schema import RetrieverConfig
from searchr1.retriever.corpus import Corpus
from searchr1.retriever.index import build_index, default_index_dir, open_index
from tests.support.retriever import PASSAGES, write_corpus

BM25 = RetrieverConfig(kind="bm25")
DENSE = RetrieverConfig(kind="dense", faiss_gpu=False)


def test_default_index_dir_sits_next_to_the_corpus():
    corpus = Path("/data/wiki-18.jsonl")
    assert default_index_dir(corpus, BM25) == Path("/data/wiki-18.bm25")
    assert default_index_dir(corpus, DENSE) == Path("/data/wiki-18.dense-all-MiniLM-L6-v2")
    assert default_index_dir(corpus, replace(DENSE, encoder="intfloat/e5-base-v2")) == Path(
        "/data/wiki-18.dense-e5-base-v2"
    )


def test_bm25_build_and_search(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl")
    index = open_index(build_index(corpus, BM25, show_progress=False), BM25)
    assert index.size == len(PASSAGES)
    scores, rows = index.search(["Guido van Rossum language", "planet Solar System largest", "zzzz"], 3)
    assert rows.shape == scores.shape == (3, 3)
    assert rows[0, 0] == 5 and rows[1, 0] == 7
    assert (rows[2] == -1).all()  # nothing shares a term with the query
    assert (np.diff(scores[0]) <= 0).all()


def test_bm25_batched_scores_equal_bm25s_retrieve(tmp_path):
    import bm25s
    from bm25s.tokenization import Tokenized

    index_dir = build_index(write_corpus(tmp_path / "c.jsonl"), BM25, show_progress=False)
    index = open_index(index_dir, BM25)
    queries = ["capital city of France", "river Africa", "English writer playwright", "the first program program"]
    scores, rows = index.search(queries, 4)
    reference = bm25s.BM25.load(str(index_dir))
    ids = index._tokenizer.tokenize(queries, update_vocab=False, return_as="ids", show_progress=False)
    ref_rows, ref_scores = reference.retrieve(
        Tokenized(ids=ids, vocab=index._tokenizer.get_vocab_dict()), k=4, show_progress=False
    )
    hit = rows >= 0
    assert hit.any(axis=1).all()
    assert np.allclose(scores[hit], ref_scores[hit], atol=1e-5)
    assert (rows[:, 0] == ref_rows[:, 0]).all()


def test_concurrent_builders_build_once(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl")
    built = []
    threads = [
        threading.Thread(target=lambda: built.append(build_index(corpus, BM25, show_progress=False))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(built)) == 1 and not list(tmp_path.glob("*.tmp-*"))
    assert open_index(built[0], BM25).size == len(PASSAGES)


def test_index_for_another_kind_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="searchr1-retriever build"):
        open_index(tmp_path / "missing", BM25)


@pytest.mark.slow
def test_dense_loads_a_search_r1_style_flat_index_file(tmp_path):
    """A bare IndexFlatIP file over the corpus rows in order (how e5_Flat.index is laid out) loads as is."""
    import faiss

    from searchr1.retriever.index import make_encoder

    corpus_path = write_corpus(tmp_path / "wiki.jsonl")
    encoder = make_encoder(DENSE)
    contents = [c for batch in Corpus(corpus_path).iter_contents(64, show_progress=False) for c in batch]
    vectors = encoder.encode(contents)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # L2-normalised: IP is cosine
    flat = faiss.IndexFlatIP(encoder.dim)
    flat.add(vectors)
    index_file = tmp_path / "e5_Flat.index"
    faiss.write_index(flat, str(index_file))

    index = open_index(index_file, replace(DENSE, index_dir=str(index_file)))
    scores, rows = index.search(["the first computer program", "largest city of France"], 2)
    assert rows[:, 0].tolist() == [4, 0]
    assert scores[0, 0] == pytest.approx(
        float(vectors[4] @ encoder.encode(["the first computer program"])[0]), abs=1e-5
    )


@pytest.mark.slow
def test_encoder_prefix_and_pooling_follow_config():
    from searchr1.retriever.encoder import Encoder

    mean = Encoder("all-MiniLM-L6-v2", pooling="mean", max_length=32)
    cls = Encoder("all-MiniLM-L6-v2", pooling="cls", max_length=32)
    text = ["Mount Everest is the highest mountain"]
    assert not np.allclose(mean.encode(text), cls.encode(text))
    assert not np.allclose(mean.encode(text), mean.encode(text, prefix="query: "))
    assert mean.encode(text).shape == (1, mean.dim) and mean.encode(text).dtype == np.float32


@pytest.mark.slow
def test_encoder_batches_of_mixed_lengths_equal_one_text_at_a_time():
    """Runs of similar length are padded separately; each vector must still be the text's own,
    in the caller's order, whatever the batch around it."""
    from searchr1.retriever.encoder import _LENGTH_RUN, Encoder

    encoder = Encoder("all-MiniLM-L6-v2", max_length=64, device="cpu")
    texts = [" ".join(["word"] * (1 + (i * 7) % 40)) + f" item {i}" for i in range(_LENGTH_RUN["cpu"] * 2 + 5)]
    alone = np.concatenate([encoder.encode([t], prefix="query: ") for t in texts])
    batched = encoder.encode(texts, prefix="query: ")
    np.testing.assert_allclose(batched, alone, atol=1e-5)


class _SeededEncoder:
    """Deterministic unit vectors per text: the file layout is under test here, not the encoder."""

    dim = 8

    def encode(self, texts, prefix=""):
        rows = [np.random.default_rng(zlib.crc32((prefix + t).encode())).standard_normal(self.dim) for t in texts]
        vectors = np.asarray(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_streamed_dense_build_writes_faiss_own_index_file(tmp_path):
    import faiss

    from searchr1.retriever.dense_index import INDEX_FILE, build_dense

    corpus = Corpus(write_corpus(tmp_path / "c.jsonl"))
    encoder = _SeededEncoder()
    build_dense(corpus, encoder, tmp_path / "ours", passage_prefix="passage: ", batch_size=3, show_progress=False)
    contents = [corpus.row(i)["contents"] for i in range(len(corpus))]
    reference = faiss.IndexFlatIP(encoder.dim)
    reference.add(encoder.encode(contents, "passage: "))
    faiss.write_index(reference, str(tmp_path / "ref.index"))
    assert (tmp_path / "ours" / INDEX_FILE).read_bytes() == (tmp_path / "ref.index").read_bytes()
    loaded = faiss.read_index(str(tmp_path / "ours" / INDEX_FILE), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    assert loaded.ntotal == len(corpus) and loaded.search(encoder.encode([contents[6]], "passage: "), 1)[1][0, 0] == 6


def test_search_workers_split_the_cores_and_one_worker_keeps_library_defaults(monkeypatch):
    from searchr1.retriever import index as index_module

    with monkeypatch.context() as patched:
        patched.setattr(index_module, "_usable_cores", lambda: 8)
        assert index_module.threads_per_worker(1) is None
        assert index_module.threads_per_worker(2) == 4 and index_module.threads_per_worker(3) == 2
        assert index_module.threads_per_worker(16) == 1
    monkeypatch.delattr(index_module.os, "sched_getaffinity", raising=False)  # as on macOS
    assert index_module._usable_cores() == (index_module.os.cpu_count() or 1)


def test_a_failed_or_killed_build_leaves_no_temp_dir_behind(tmp_path, monkeypatch):
    from searchr1.retriever import bm25_build

    corpus = write_corpus(tmp_path / "c.jsonl")
    killed = tmp_path / "c.bm25.tmp-999999"  # a builder killed mid-spill
    killed.mkdir()
    (killed / "pairs-terms.tmp").write_bytes(b"x" * 1000)

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(bm25_build, "_write_weights", full_disk)
        with pytest.raises(OSError, match="No space left"):
            build_index(corpus, BM25, show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name) == []
    assert open_index(build_index(corpus, BM25, show_progress=False), BM25).size == len(PASSAGES)


@pytest.fixture(scope="module")
def synthetic_bm25(tmp_path_factory):
    """BM25 over the synthetic encyclopedia: short same-shape passages, so many equal scores."""
    from searchr1.data.synthetic import generate

    book = generate(0, 2000)
    corpus = tmp_path_factory.mktemp("synthetic") / "corpus.jsonl"
    corpus.write_text("\n".join(book.corpus_lines()) + "\n")
    index = open_index(build_index(corpus, BM25, show_progress=False), BM25)
    queries = ["poet", "river", "capital city"] + [q.text for q in book.train[:200]]
    return index, queries


def test_bm25_top_k_is_a_total_order_so_k_and_batch_never_change_an_answer(synthetic_bm25):
    """The issue's case: "poet" at topk=3 gave other passages than the first 3 of a topk=100 search."""
    index, queries = synthetic_bm25
    scores100, rows100 = index.search(queries, 100)
    for k in (1, 3, 5):
        _, rows = index.search(queries, k)
        np.testing.assert_array_equal(rows, rows100[:, :k])
        for i in (0, 1, 2, 7):  # alone, as an unbatched request would be searched
            np.testing.assert_array_equal(index.search([queries[i]], k)[1][0], rows100[i, :k])
    hits = rows100 >= 0
    ties = hits[:, 1:] & hits[:, :-1] & (scores100[:, 1:] == scores100[:, :-1])
    assert ties.any()  # the corpus has ties to break...
    assert (rows100[:, 1:] > rows100[:, :-1])[ties].all()  # ...and equal scores go by row id


def test_dense_ties_are_ranked_by_row_id_whatever_k(tmp_path):
    """Equal vectors score equally: the k-th place among them must go to the lowest row ids."""
    import faiss

    from searchr1.retriever.dense_index import DenseIndex

    encoder = _SeededEncoder()
    base = encoder.encode(["a", "b", "c"])
    # Rows 1..40 tie: more than the hits fetched beyond k, so the search must widen until the tie ends.
    vectors = np.concatenate([base[[1]], np.repeat(base[[0]], 40, axis=0), base[[2]]])
    flat = faiss.IndexFlatIP(encoder.dim)
    flat.add(vectors[::-1].copy())  # FAISS sees the tied rows in reverse order
    faiss.write_index(flat, str(tmp_path / "flat.index"))
    index = DenseIndex(tmp_path / "flat.index", encoder, query_prefix="", use_gpu=False)
    tied = list(range(1, 41))  # labels of the equal vectors (the reversed rows 1..40)
    for k in (1, 3, 5, 15, 41):
        _, rows = index.search(["a", "a"], k)
        assert rows[0].tolist() == rows[1].tolist() and rows[0].tolist()[:40] == tied[:k]


class _HighIdsFirstIndex:
    """Stands in for an index whose top-k keeps other members of a tie than the lowest ids (FAISS on
    GPU gives no tie order): among equal scores it keeps the highest labels."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores
        self.ntotal = len(scores)
        self.fetched: list[int] = []

    def search(self, vectors, k):
        self.fetched.append(k)
        order = np.lexsort((-np.arange(self.ntotal), -self.scores))[:k]
        return np.tile(self.scores[order], (len(vectors), 1)), np.tile(order, (len(vectors), 1))


def test_dense_search_widens_until_a_tie_at_the_kth_place_ends(tmp_path):
    import faiss

    from searchr1.retriever.dense_index import DenseIndex

    encoder = _SeededEncoder()
    faiss.write_index(faiss.IndexFlatIP(encoder.dim), str(tmp_path / "empty.index"))
    index = DenseIndex(tmp_path / "empty.index", encoder, query_prefix="", use_gpu=False)
    scores = np.array([0.9] + [0.5] * 30 + [0.1], dtype=np.float32)  # ids 1..30 tie
    index._index, index.size = _HighIdsFirstIndex(scores), len(scores)
    _, rows = index.search(["q"], 3)
    assert rows[0].tolist() == [0, 1, 2]
    assert index._index.fetched == [11, 22, 32]  # k + margin, doubled until the tie is inside
