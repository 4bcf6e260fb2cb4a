"""BM25 over the corpus with bm25s: built from chunked tokenisation, memory-mapped on load."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from searchr1.retriever.corpus import Corpus

_TOKENIZE_CHUNK = 50_000
_STOPWORDS = "en"


def _tokenizer():
    from bm25s.tokenization import Tokenizer

    return Tokenizer(stopwords=_STOPWORDS)


def build_bm25(corpus: Corpus, out_dir: Path, show_progress: bool = True) -> None:
    """Tokenise in chunks (token ids as int32 arrays, not Python lists) and index once."""
    import bm25s

    tokenizer = _tokenizer()
    doc_ids: list[np.ndarray] = []
    for chunk in corpus.iter_contents(_TOKENIZE_CHUNK, show_progress, desc="bm25 tokenize"):
        ids = tokenizer.tokenize(chunk, update_vocab=True, return_as="ids", show_progress=False)
        doc_ids.extend(np.asarray(d, dtype=np.int32) for d in ids)
    model = bm25s.BM25()
    model.index((doc_ids, tokenizer.get_vocab_dict()), show_progress=show_progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir), show_progress=False)
    tokenizer.save_vocab(str(out_dir))


class BM25Index:
    """``search`` returns (scores, row ids) of shape [n, k]; non-matching slots have id -1."""

    def __init__(self, index_dir: Path) -> None:
        import bm25s

        self._model = bm25s.BM25.load(str(index_dir), mmap=True, show_progress=False)
        self._tokenizer = _tokenizer()
        self._tokenizer.load_vocab(str(index_dir))
        self._vocab = self._tokenizer.get_vocab_dict()
        self.size = int(self._model.scores["num_docs"])

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        from bm25s.tokenization import Tokenized

        k = min(k, self.size)
        ids = self._tokenizer.tokenize(list(queries), update_vocab=False, return_as="ids", show_progress=False)
        rows, scores = self._model.retrieve(Tokenized(ids=ids, vocab=self._vocab), k=k, show_progress=False)
        rows = np.asarray(rows, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        # Like Lucene, a document that shares no term with the query is not a hit.
        rows[scores <= 0] = -1
        return scores, rows
