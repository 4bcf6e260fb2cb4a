"""What an eval result was measured on: model, retriever and corpus, data split, sampling."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from searchr1.config.schema import SearchR1Config

_EDGE_BYTES = 1 << 20


def file_identity(path: str | Path) -> dict[str, Any]:
    """Path, size and a fingerprint: sha256 over the size and the first and last MiB.

    Hashing all of a 14 GB wiki corpus would take minutes per eval; the edges plus the size tell
    corpora apart in practice, and for files up to 2 MiB the fingerprint covers every byte.
    """
    path = Path(path)
    if not path.is_file():
        return {"path": str(path), "exists": False}
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(_EDGE_BYTES))
        if size > _EDGE_BYTES:
            handle.seek(max(_EDGE_BYTES, size - _EDGE_BYTES))
            digest.update(handle.read())
    return {"path": str(path.resolve()), "size_bytes": size, "fingerprint": f"sha256-edges:{digest.hexdigest()}"}


def identity(
    cfg: SearchR1Config, *, split_path: str, num_examples: int, evaluated: int, engine: str, retriever_urls: list[str]
) -> dict[str, Any]:
    backend = cfg.backend
    retriever: dict[str, Any] = {"backend": backend.name, "topk": cfg.search.topk, **backend.identity()}
    if backend.serves_corpus:
        # With external retriever URLs the corpus is the one data.corpus_path names (fingerprinted if present here).
        retriever.update(
            kind=cfg.retriever.kind,
            encoder=cfg.retriever.encoder if cfg.retriever.kind == "dense" else None,
            urls=retriever_urls,
            corpus=file_identity(cfg.data.corpus_path),
        )
    if cfg.search.replay_path:
        retriever["replay"] = file_identity(cfg.search.replay_path)
    return {
        "tools": list(cfg.tools),
        "model": {
            "name": cfg.model.name,
            "hf_checkpoint": cfg.model.hf_checkpoint,
            "gguf_file": cfg.model.gguf_file,
            "checkpoint": cfg.eval.checkpoint,
            "engine": engine,
        },
        "retriever": retriever,
        "data": {
            "name": cfg.data.name,
            "split": cfg.eval.split,
            **file_identity(split_path),
            "examples_in_split": num_examples,
            "examples_evaluated": evaluated,
        },
        "sampling": {
            "temperature": cfg.eval.temperature,
            "pass_k": cfg.eval.pass_k,
            "max_turns": cfg.rollout.max_turns,
            "max_turn_tokens": cfg.rollout.max_turn_tokens,
            "max_response_len": cfg.rollout.max_response_len,
            "reward": cfg.reward.kind,
        },
    }
