"""Dense retrieval: a FAISS inner-product index over L2-normalised encoder vectors.

Labels are corpus row numbers, so Search-R1's published ``e5_Flat.index`` (IndexFlatIP built
from wiki-18.jsonl in order) loads unchanged next to ``wiki-18.jsonl``.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from searchr1.retriever.corpus import Corpus
from searchr1.retriever.encoder import Encoder

log = logging.getLogger(__name__)

INDEX_FILE = "faiss.index"
_BLAS_MIN_QUERIES = 8
_FLAT_HEADER_BYTES = 45
_TIE_MARGIN = 8
"""Hits fetched beyond k so that ties at the k-th place can be ranked by row id."""


def index_file(index_path: Path) -> Path:
    """``index_path`` may be our index dir or a FAISS file such as Search-R1's e5_Flat.index."""
    return index_path if index_path.is_file() else index_path / INDEX_FILE


def build_dense(
    corpus: Corpus, encoder: Encoder, out_dir: Path, *, passage_prefix: str, batch_size: int, show_progress: bool = True
) -> None:
    """Encode batch by batch straight into the index file: RAM holds one batch, not the index
    (wiki-18 under e5 is 21M x 768 floats, 60 GB). The file is what ``faiss.write_index`` writes
    for an IndexFlatIP, so FAISS (and Search-R1) read it as their own."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(out_dir / INDEX_FILE, "wb") as out:
        out.write(flat_ip_header(encoder.dim, len(corpus)))
        for chunk in corpus.iter_contents(batch_size, show_progress, desc="dense encode"):
            vectors = np.ascontiguousarray(encoder.encode(chunk, passage_prefix), dtype="<f4")
            out.write(vectors.tobytes())
            written += len(vectors)
    if written != len(corpus):
        raise RuntimeError(f"encoded {written} passages but the corpus has {len(corpus)}")


def flat_ip_header(dim: int, ntotal: int) -> bytes:
    """FAISS' serialized IndexFlatIP header for ``ntotal`` vectors: FAISS' own bytes for an empty
    index with the two counts filled in. Layout: fourcc, d (i32), ntotal (i64), two unused i64,
    is_trained (u8), metric (i32), then the float count (u64) that precedes the vectors."""
    import faiss

    header = bytearray(faiss.serialize_index(faiss.IndexFlatIP(dim)).tobytes())
    if len(header) != _FLAT_HEADER_BYTES or header[:4] != b"IxFI":
        raise RuntimeError(f"FAISS {faiss.__version__} serializes IndexFlatIP in a layout this build does not know")
    struct.pack_into("<q", header, 8, ntotal)
    struct.pack_into("<Q", header, _FLAT_HEADER_BYTES - 8, ntotal * dim)
    return bytes(header)


class DenseIndex:
    """``search`` encodes the whole batch of queries at once and searches the index once."""

    def __init__(
        self, index_path: Path, encoder: Encoder, *, query_prefix: str, use_gpu: bool, threads: Optional[int] = None
    ) -> None:
        import faiss
        import torch

        self._encoder = encoder
        self._query_prefix = query_prefix
        # Memory-map on CPU: a 21M x 768 flat index is ~60 GB and is paged in as it is searched.
        index = faiss.read_index(str(index_file(index_path)), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        if index.d != encoder.dim:
            raise ValueError(f"index {index_path} has dim {index.d} but encoder {encoder.name!r} gives {encoder.dim}")
        # faiss-cpu only switches to BLAS (one GEMM for the batch) above this many queries; its
        # default (128k in recent releases) would leave micro-batches on the per-query scan.
        faiss.cvar.distance_compute_blas_threshold = _BLAS_MIN_QUERIES
        if threads is not None:
            # Several search workers each get their share of the cores (OpenMP teams are per
            # calling thread), so that they do not oversubscribe them.
            torch.set_num_threads(threads)
            faiss.omp_set_num_threads(threads)
        on_gpu = use_gpu and faiss.get_num_gpus() > 0
        if on_gpu:
            options = faiss.GpuMultipleClonerOptions()
            options.useFloat16 = True
            options.shard = True
            index = faiss.index_cpu_to_all_gpus(index, co=options)
            log.info("FAISS index on %d GPU(s) (retriever.faiss_gpu=true)", faiss.get_num_gpus())
        self.thread_safe = not on_gpu
        self._index = index
        self.size = int(index.ntotal)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top k in a total order: score descending, then row id ascending (FAISS breaks ties
        arbitrarily, so its k-th hit among equals could change with k and with the batch)."""
        k = min(k, self.size)
        vectors = self._encoder.encode(queries, self._query_prefix)
        fetch = min(k + _TIE_MARGIN, self.size)
        while True:
            scores, rows = self._index.search(vectors, fetch)
            # When the last fetched hit ties with the k-th, more equal hits may lie beyond it.
            if fetch == self.size or not np.any((scores[:, k - 1] == scores[:, -1]) & (rows[:, -1] >= 0)):
                break
            fetch = min(fetch * 2, self.size)
        order = np.lexsort((rows, -scores))[:, :k]  # sorts each row along the last axis
        scores, rows = np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)
        return scores.astype(np.float32, copy=False), rows.astype(np.int64, copy=False)
