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
    Scores equal bm25s' own ``retrieve`` (the Lucene variant, which has no non-occurrence term);
    ties are ranked by row id, so the top k is a function of (query, k, index) alone.
    """

    thread_safe = True  # read-only arrays and vocabulary

    def __init__(self, index_dir: Path) -> None:
        import bm25s
        import scipy.sparse

        model = bm25s.BM25.load(str(index_dir), mmap=True, show_progress=False)
        if model.nonoccurrence_array is not None:
            raise ValueError(
                f"BM25 index {index_dir} uses method {model.method!r}; only lucene-style indexes are supported"
            )
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
            values, ids = scored.data[lo:hi], scored.indices[lo:hi]
            # Like Lucene, a document that shares no term with the query is not a hit.
            positive = values > 0
            values, ids = values[positive], ids[positive]
            top = top_k_ranked(values, ids, k)
            scores[q, : len(top)] = values[top]
            rows[q, : len(top)] = ids[top]
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


def top_k_ranked(values: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best hits in a total order: score descending, then row id ascending.

    Equal scores are common in BM25 (short queries, same-length passages); without the id order the
    k-th place among ties depended on k and on the partition, so a query's answer changed with the
    other queries batched beside it.
    """
    if len(values) > k:
        kth = np.partition(values, len(values) - k)[len(values) - k]
        candidates = np.flatnonzero(values >= kth)  # every hit tied with the k-th is a candidate
    else:
        candidates = np.arange(len(values))
    order = np.lexsort((ids[candidates], -values[candidates]))[:k]
    return candidates[order]
