"""BM25 search over an index in bm25s' layout (see bm25_build), memory-mapped on load."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from searchr1.retriever.bm25_build import bm25_tokenizer


class BM25Index:
    """``search`` returns (scores, row ids) of shape [n, k]; non-matching slots have id -1.

    bm25s stores BM25 term weights as a (term x document) sparse matrix. We score a whole batch
    of queries with one sparse product (query-term counts @ weights) instead of bm25s' per-query
    loop, so a batch costs about the postings it touches and not one full score array per query.
    Scores equal bm25s' own ``retrieve`` (the Lucene variant, which has no non-occurrence term).
    """

    thread_safe = True  # read-only arrays and vocabulary

    def __init__(self, index_dir: Path) -> None:
        import bm25s
        import scipy.sparse

        model = bm25s.BM25.load(str(index_dir), mmap=True, show_progress=False)
        if model.nonoccurrence_array is not None:
            raise ValueError(f"BM25 index {index_dir} uses method {model.method!r}; only lucene-style indexes are supported")
        self._tokenizer = bm25_tokenizer()
        self._tokenizer.load_vocab(str(index_dir))
        weights = model.scores
        self.size = int(weights["num_docs"])
        self._vocab_size = len(weights["indptr"]) - 1
        self._weights = scipy.sparse.csr_matrix(
            (weights["data"], weights["indices"], weights["indptr"]), shape=(self._vocab_size, self.size)
        )

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.size)
        counts = self._query_counts(queries)
        scored = (counts @ self._weights).tocsr()
        scores = np.zeros((len(queries), k), dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        for q in range(len(queries)):
            lo, hi = scored.indptr[q], scored.indptr[q + 1]
            top = _top_k(scored.data[lo:hi], k)
            # Like Lucene, a document that shares no term with the query is not a hit.
            top = top[scored.data[lo:hi][top] > 0]
            scores[q, : len(top)] = scored.data[lo:hi][top]
            rows[q, : len(top)] = scored.indices[lo:hi][top]
        return scores, rows

    def _query_counts(self, queries: Sequence[str]):
        import scipy.sparse

        ids = self._tokenizer.tokenize(list(queries), update_vocab=False, return_as="ids", show_progress=False)
        lengths = [len(t) for t in ids]
        cols = np.fromiter((t for toks in ids for t in toks), dtype=np.int64, count=sum(lengths))
        qrows = np.repeat(np.arange(len(queries)), lengths)
        keep = cols < self._vocab_size
        data = np.ones(int(keep.sum()), dtype=np.float32)
        # Duplicates are summed: a term repeated in the query counts twice, as in bm25s.
        return scipy.sparse.csr_matrix((data, (qrows[keep], cols[keep])), shape=(len(queries), self._vocab_size))


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values, best first."""
    if len(values) > k:
        part = np.argpartition(-values, k - 1)[:k]
    else:
        part = np.arange(len(values))
    return part[np.argsort(-values[part], kind="stable")]
