"""``searchr1-retriever build|serve``: build an index over a corpus, or serve it over HTTP.

Every RetrieverConfig field is a flag (``--max-batch-size 64``, ``--no-faiss-gpu``), so the
embedded retriever and a hand-started server take the same settings as the Hydra config.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from searchr1.config.checks import ConfigError
from searchr1.errors import exit_on_user_error
from searchr1.config.schema import RetrieverConfig
from searchr1.retriever.flags import add_config_flags, config_from

log = logging.getLogger("searchr1.retriever")

_GIL_SWITCH_S = 0.0002


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="searchr1-retriever",
        description="Build a retrieval index over a Search-R1 JSONL corpus, or serve it over HTTP.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the index for a corpus (skipped when it exists)")
    build.add_argument("--force", action="store_true", help="rebuild even if the index exists")
    serve = sub.add_parser("serve", help="serve POST /retrieve, GET /health, GET /metrics")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument("--port-file", type=Path, default=None, help="write the bound port here once listening")
    serve.add_argument("--build-if-missing", action="store_true", help="build the index first when there is none")
    serve.add_argument("--exit-with-parent", action="store_true", help="stop when the launching process dies")
    for p in (build, serve):
        p.add_argument("--corpus", type=Path, required=True, help="Search-R1 JSONL corpus")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        add_config_flags(p)
    return parser


def run_build(corpus: Path, cfg: RetrieverConfig, *, force: bool, show_progress: bool) -> Path:
    from searchr1.retriever.index import build_index

    return build_index(corpus, cfg, show_progress=show_progress, force=force)


def run_serve(
    corpus_path: Path,
    cfg: RetrieverConfig,
    *,
    port: int,
    port_file: Optional[Path],
    exit_with_parent: bool = False,
    show_progress: bool = True,
) -> None:
    import uvloop

    from searchr1.retriever.batcher import MicroBatcher
    from searchr1.retriever.corpus import Corpus
    from searchr1.retriever.index import open_index, resolve_index_dir
    from searchr1.retriever.server import make_app, make_search_fn, serve

    index_dir = resolve_index_dir(corpus_path, cfg)
    index = open_index(index_dir, cfg)
    corpus = Corpus(corpus_path, show_progress=show_progress)
    if index.size != len(corpus):
        raise ConfigError(f"index {index_dir} holds {index.size} passages but corpus {corpus_path} has {len(corpus)}")
    workers = search_workers(cfg, index)
    batcher = MicroBatcher(
        make_search_fn(index, corpus),
        max_batch_size=cfg.max_batch_size,
        max_wait_ms=cfg.max_wait_ms,
        workers=workers,
        piece_ms=cfg.piece_ms,
    )
    info = {"kind": cfg.kind, "num_docs": len(corpus), "index": str(index_dir), "corpus": str(corpus_path)}
    if cfg.kind == "dense":
        info["encoder"] = cfg.encoder
    batching = "off" if cfg.max_batch_size == 1 else f"up to {cfg.max_batch_size} queries, {cfg.max_wait_ms} ms wait"
    log.info(
        "serving %s index %s over %d passages; batching %s, %d search worker(s) "
        "(retriever.max_batch_size, retriever.max_wait_ms, retriever.search_workers)",
        cfg.kind,
        index_dir,
        len(corpus),
        batching,
        workers,
    )
    # The event loop and the index worker hand the GIL back and forth around every syscall and
    # numpy call; the default 5 ms switch interval turns that into a convoy (~25% fewer QPS).
    sys.setswitchinterval(_GIL_SWITCH_S)
    batcher.start()
    try:
        # uvloop: with hundreds of requests in flight the asyncio loop itself was the bottleneck.
        uvloop.run(serve(make_app(batcher, cfg, info), port, port_file, exit_with_parent=exit_with_parent))
    finally:
        batcher.stop()
        corpus.close()


def search_workers(cfg: RetrieverConfig, index) -> int:
    """``retriever.search_workers``, or 1 for an index that one thread at a time may search."""
    if index.thread_safe or cfg.search_workers == 1:
        return cfg.search_workers
    log.info(
        "the index is on GPU and not thread-safe: 1 search worker, not %d (retriever.search_workers)",
        cfg.search_workers,
    )
    return 1


def main(argv: Optional[Sequence[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ns = _parser().parse_args(argv)
    with exit_on_user_error("searchr1-retriever", also=(FileNotFoundError, ValueError)):  # corpus, index
        cfg = config_from(ns)
        if ns.command == "build":
            print(run_build(ns.corpus, cfg, force=ns.force, show_progress=not ns.quiet))
        else:
            if ns.build_if_missing:
                run_build(ns.corpus, cfg, force=False, show_progress=not ns.quiet)
            run_serve(
                ns.corpus,
                cfg,
                port=ns.port,
                port_file=ns.port_file,
                exit_with_parent=ns.exit_with_parent,
                show_progress=not ns.quiet,
            )
