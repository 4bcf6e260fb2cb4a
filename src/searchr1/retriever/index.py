"""Where an index lives, building it once (safe under concurrent builders), and opening it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Iterator, Optional, Protocol, Sequence

import numpy as np

from searchr1.config.schema import RetrieverConfig
from searchr1.retriever.corpus import Corpus

log = logging.getLogger(__name__)

META_FILE = "searchr1-index.json"
_ENCODE_BATCH = {"cpu": 64, "cuda": 512}


class Index(Protocol):
    """A batch of queries in, (scores, row ids) of shape [n, k] out; id -1 marks an empty slot."""

    size: int
    thread_safe: bool
    """Whether several threads may search at once (not so for FAISS GPU indexes)."""

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]: ...


def default_index_dir(corpus_path: Path, cfg: RetrieverConfig) -> Path:
    """``<corpus stem>.bm25`` or ``<corpus stem>.dense-<encoder>`` next to the corpus."""
    name = corpus_path.name.removesuffix(".jsonl")
    if cfg.kind == "bm25":
        return corpus_path.with_name(f"{name}.bm25")
    encoder = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(cfg.encoder.rstrip("/")).name)
    return corpus_path.with_name(f"{name}.dense-{encoder}")


def resolve_index_dir(corpus_path: Path, cfg: RetrieverConfig) -> Path:
    return Path(cfg.index_dir).expanduser() if cfg.index_dir else default_index_dir(corpus_path, cfg)


def index_ready(index_dir: Path, cfg: RetrieverConfig) -> bool:
    # A bare FAISS file (Search-R1's e5_Flat.index) is a finished dense index.
    if cfg.kind == "dense" and index_dir.is_file():
        return True
    return (index_dir / META_FILE).is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_index(corpus_path: Path, cfg: RetrieverConfig, *, show_progress: bool = True, force: bool = False) -> Path:
    """Build into a temp dir and rename; a lock makes racing builders wait instead of rebuilding."""
    index_dir = resolve_index_dir(corpus_path, cfg)
    with _file_lock(index_dir.with_name(index_dir.name + ".lock")):
        if index_ready(index_dir, cfg) and not force:
            log.info("index %s exists; not rebuilding", index_dir)
            return index_dir
        for stale in index_dir.parent.glob(f"{index_dir.name}.tmp-*"):
            # Left by a builder that was killed (we hold the lock, so none is running): a BM25
            # build's spill alone can be gigabytes.
            shutil.rmtree(stale, ignore_errors=True)
        tmp = index_dir.with_name(f"{index_dir.name}.tmp-{os.getpid()}")
        corpus = Corpus(corpus_path, show_progress=show_progress)
        try:
            _build_into(tmp, corpus, cfg, show_progress)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            corpus.close()
        meta = {"kind": cfg.kind, "num_docs": len(corpus), "corpus": str(corpus_path.resolve())}
        if cfg.kind == "dense":
            meta.update(encoder=cfg.encoder, pooling=cfg.pooling, passage_prefix=cfg.passage_prefix)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        shutil.rmtree(index_dir, ignore_errors=True)
        os.replace(tmp, index_dir)
    log.info("built %s index at %s", cfg.kind, index_dir)
    return index_dir


def _build_into(out_dir: Path, corpus: Corpus, cfg: RetrieverConfig, show_progress: bool) -> None:
    if cfg.kind == "bm25":
        from searchr1.retriever.bm25_build import build_bm25

        build_bm25(corpus, out_dir, show_progress)
        return
    from searchr1.retriever.dense_index import build_dense

    encoder = make_encoder(cfg)
    batch = _ENCODE_BATCH["cuda" if encoder.device.startswith("cuda") else "cpu"]
    build_dense(
        corpus, encoder, out_dir, passage_prefix=cfg.passage_prefix, batch_size=batch, show_progress=show_progress
    )


def make_encoder(cfg: RetrieverConfig):
    from searchr1.retriever.encoder import Encoder

    return Encoder(cfg.encoder, pooling=cfg.pooling, max_length=cfg.max_length)


def open_index(index_dir: Path, cfg: RetrieverConfig) -> Index:
    if not index_ready(index_dir, cfg):
        raise FileNotFoundError(f"no {cfg.kind} index at {index_dir}; run: searchr1-retriever build --kind {cfg.kind}")
    if cfg.kind == "bm25":
        from searchr1.retriever.bm25_index import BM25Index

        return BM25Index(index_dir)
    from searchr1.retriever.dense_index import DenseIndex

    return DenseIndex(
        index_dir,
        make_encoder(cfg),
        query_prefix=cfg.query_prefix,
        use_gpu=cfg.faiss_gpu,
        threads=threads_per_worker(cfg.search_workers),
    )


def threads_per_worker(workers: int) -> Optional[int]:
    """Each search worker's share of this process's cores, for the encoder's and FAISS's threads;
    None (the libraries' own defaults) for a single worker."""
    return max(1, _usable_cores() // workers) if workers > 1 else None


def _usable_cores() -> int:
    # sched_getaffinity honours taskset and container CPU sets; macOS has no such call.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
