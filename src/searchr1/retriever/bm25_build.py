"""Building a BM25 index for corpora larger than RAM, in the on-disk layout bm25s loads.

bm25s' own ``index`` keeps every document's token ids and several (document, term, score) arrays in
memory and sorts them there: tens of GB for wiki-18's 21M passages. We stream the corpus instead.
Pass 1 tokenises it chunk by chunk and spills each document's distinct (term, count) pairs to disk,
keeping only document frequencies and document lengths. Pass 2 weighs the spilled pairs (BM25,
bm25s' Lucene variant and defaults) and appends them to each term's row of memory-mapped arrays: the
term-major sparse matrix bm25s saves. RAM holds one chunk plus per-term and per-document counters.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from searchr1.retriever.corpus import Corpus

K1, B = 1.5, 0.75  # bm25s' defaults for its "lucene" method, the scoring BM25Index assumes
STOPWORDS = "en"
_CHUNK_DOCS = 50_000
_SPILL_TERMS, _SPILL_COUNTS = "pairs-terms.tmp", "pairs-counts.tmp"
# bm25s' file names: BM25.load reads these.
_DATA, _INDICES, _INDPTR = "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy"
_VOCAB, _PARAMS = "vocab.index.json", "params.index.json"


def bm25_tokenizer():
    from bm25s.tokenization import Tokenizer

    return Tokenizer(stopwords=STOPWORDS)


@dataclass
class _Counts:
    doc_lengths: np.ndarray
    """Tokens per document, repeats included (BM25's document length)."""
    doc_terms: np.ndarray
    """Distinct terms per document: how many spilled pairs each document owns."""
    doc_freqs: np.ndarray
    """Documents per term id."""


def build_bm25(corpus: Corpus, out_dir: Path, show_progress: bool = True) -> None:
    if len(corpus) == 0:
        raise ValueError(f"corpus {corpus.path} has no passages")
    tokenizer = bm25_tokenizer()
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = _spill_pairs(corpus, tokenizer, out_dir, show_progress)
    vocab = tokenizer.get_vocab_dict()
    _write_weights(counts, len(vocab), out_dir, show_progress)
    (out_dir / _SPILL_TERMS).unlink()
    (out_dir / _SPILL_COUNTS).unlink()
    _write_params(out_dir, vocab, num_docs=len(counts.doc_lengths))
    tokenizer.save_vocab(str(out_dir))


def _spill_pairs(corpus: Corpus, tokenizer, out_dir: Path, show_progress: bool) -> _Counts:
    lengths, terms_per_doc = [], []
    doc_freqs = np.zeros(0, dtype=np.int64)
    with open(out_dir / _SPILL_TERMS, "wb") as terms_file, open(out_dir / _SPILL_COUNTS, "wb") as counts_file:
        for chunk in corpus.iter_contents(_CHUNK_DOCS, show_progress, desc="bm25 tokenize"):
            ids = tokenizer.tokenize(chunk, update_vocab=True, return_as="ids", show_progress=False)
            doc_lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            terms, term_counts, per_doc = _distinct_terms(ids, doc_lengths)
            terms.astype(np.int32).tofile(terms_file)
            term_counts.astype(np.float32).tofile(counts_file)
            lengths.append(doc_lengths.astype(np.int32))
            terms_per_doc.append(per_doc)
            doc_freqs = _add_doc_freqs(doc_freqs, terms)
    return _Counts(np.concatenate(lengths), np.concatenate(terms_per_doc), doc_freqs)


def _distinct_terms(ids: list[list[int]], doc_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each document's distinct term ids (document by document, ascending) with their counts, and
    how many distinct terms each document has."""
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(doc_lengths.sum()))
    docs = np.repeat(np.arange(len(ids), dtype=np.int64), doc_lengths)
    keys, term_counts = np.unique((docs << 32) | flat, return_counts=True)
    per_doc = np.bincount(keys >> 32, minlength=len(ids)).astype(np.int32)
    return keys & 0xFFFFFFFF, term_counts, per_doc


def _add_doc_freqs(doc_freqs: np.ndarray, terms: np.ndarray) -> np.ndarray:
    # The vocabulary grows chunk by chunk, so the counter does too.
    grown = np.bincount(terms, minlength=len(doc_freqs))
    grown[: len(doc_freqs)] += doc_freqs
    return grown


def _write_weights(counts: _Counts, vocab_size: int, out_dir: Path, show_progress: bool) -> None:
    from tqdm import tqdm

    doc_freqs = np.pad(counts.doc_freqs, (0, vocab_size - len(counts.doc_freqs)))
    indptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(doc_freqs, out=indptr[1:])
    idf = _lucene_idf(doc_freqs, num_docs=len(counts.doc_lengths))
    length_norm = K1 * ((1 - B) + B * counts.doc_lengths / counts.doc_lengths.mean())
    data = open_memmap(out_dir / _DATA, mode="w+", dtype=np.float32, shape=(int(indptr[-1]),))
    indices = open_memmap(out_dir / _INDICES, mode="w+", dtype=np.int32, shape=(int(indptr[-1]),))
    spilled_terms = np.memmap(out_dir / _SPILL_TERMS, dtype=np.int32, mode="r")
    spilled_counts = np.memmap(out_dir / _SPILL_COUNTS, dtype=np.float32, mode="r")
    pair_starts = np.concatenate([[0], np.cumsum(counts.doc_terms, dtype=np.int64)])
    next_slot = indptr[:-1].copy()
    num_docs = len(counts.doc_lengths)
    with tqdm(total=num_docs, unit="doc", desc="bm25 weigh", disable=not show_progress) as bar:
        for first in range(0, num_docs, _CHUNK_DOCS):
            last = min(first + _CHUNK_DOCS, num_docs)
            lo, hi = pair_starts[first], pair_starts[last]
            terms, tf = np.asarray(spilled_terms[lo:hi]), np.asarray(spilled_counts[lo:hi])
            docs = np.repeat(np.arange(first, last, dtype=np.int32), counts.doc_terms[first:last])
            weights = idf[terms] * (tf / (length_norm[docs] + tf))
            _append_to_rows(terms, docs, weights, next_slot, data, indices)
            bar.update(last - first)
    data.flush()
    indices.flush()
    np.save(out_dir / _INDPTR, indptr)


def _lucene_idf(doc_freqs: np.ndarray, num_docs: int) -> np.ndarray:
    with np.errstate(divide="ignore"):
        idf = np.log(1 + (num_docs - doc_freqs + 0.5) / (doc_freqs + 0.5))
    return np.where(doc_freqs > 0, idf, 0.0).astype(np.float32)


def _append_to_rows(terms, docs, weights, next_slot, data, indices) -> None:
    """Append a chunk's entries to their terms' rows. Chunks come in document order, so every row
    stays sorted by document, as in a matrix built in memory."""
    order = np.argsort(terms, kind="stable")
    terms = terms[order]
    run_starts = np.flatnonzero(np.r_[True, terms[1:] != terms[:-1]])
    run_lengths = np.diff(np.r_[run_starts, len(terms)])
    rank_in_run = np.arange(len(terms)) - np.repeat(run_starts, run_lengths)
    slots = next_slot[terms] + rank_in_run
    data[slots] = weights[order]
    indices[slots] = docs[order]
    next_slot[terms[run_starts]] += run_lengths


def _write_params(out_dir: Path, vocab: dict[str, int], num_docs: int) -> None:
    import bm25s

    (out_dir / _VOCAB).write_text(json.dumps(vocab, ensure_ascii=False))
    params = dict(
        k1=K1,
        b=B,
        delta=0.5,
        method="lucene",
        idf_method="lucene",
        dtype="float32",
        int_dtype="int32",
        num_docs=num_docs,
        version=bm25s.__version__,
        backend="numpy",
    )
    (out_dir / _PARAMS).write_text(json.dumps(params, indent=4))
