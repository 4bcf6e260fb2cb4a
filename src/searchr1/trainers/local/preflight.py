"""Checks before the local trainer is even imported (``cli.run`` calls ``run_preflight`` first, so
no torch import, model load or W&B init comes before them): every resource a run needs later
(search key, replay file, retriever index and encoder, model checkpoint, writable dirs, retriever
URLs) is looked at now, and each problem is one line that names the config key to fix.

Cheap by design: nothing is loaded or built; the only network calls are one-query probes of the
external retrievers in ``backend.urls``, with a short timeout.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Optional

from searchr1.config.schema import SearchR1Config
from searchr1.paths import cache_root
from searchr1.preflight import (
    file_problem,
    raise_on_problems,
    retriever_problem,
    secret_problem,
    url_problem,
    writable_dir_problem,
)

log = logging.getLogger(__name__)

RETRIEVER_PROBE_TIMEOUT_S = 3.0
_SYNTHETIC_KEYS = ("train_path", "test_path", "corpus_path")


def run_preflight(cfg: SearchR1Config, run_dir: Path) -> None:
    """Raise one PreflightError (a ConfigError: one line per problem, exit 2) if anything is wrong."""
    raise_on_problems(preflight(cfg, run_dir, env=os.environ), "local trainer preflight failed")


def preflight(cfg: SearchR1Config, run_dir: Path, *, env: Mapping[str, str]) -> list[str]:
    """Every problem found (empty: good to start)."""
    problems = [
        _model_problem(cfg),
        _warm_start_problem(cfg),
        writable_dir_problem("hydra.run.dir", run_dir),
        writable_dir_problem("trainer.checkpoint_dir", cfg.trainer.checkpoint_dir or run_dir / "checkpoints")
        if cfg.trainer.checkpoint_every
        else None,
        _synthetic_data_problem(cfg),
        *_search_problems(cfg, env),
    ]
    return [problem for problem in problems if problem]


# --------------------------------------------------------------------------- model
def _model_problem(cfg: SearchR1Config) -> Optional[str]:
    from searchr1.models.tokenizer import resolve_checkpoint

    key, name = "model.hf_checkpoint", cfg.model.hf_checkpoint
    try:
        path = Path(resolve_checkpoint(name)).expanduser()
    except FileNotFoundError as exc:
        return f"{key}={name}: {exc}"
    if path.is_dir():
        if cfg.model.gguf_file and not (path / cfg.model.gguf_file).is_file():
            return f"model.gguf_file={cfg.model.gguf_file}: no such file in {path}"
        if (path / "config.json").is_file() or any(path.glob("*.gguf")):
            return None
        return f"{key}={name}: {path} holds neither config.json nor a .gguf file"
    if _in_hf_cache(name):
        return None
    return f"{key}={name}: no such dir, and not in the local Hugging Face cache (models load offline)"


def _warm_start_problem(cfg: SearchR1Config) -> Optional[str]:
    from searchr1.config.checks import ConfigError
    from searchr1.models.loading import check_warm_start

    if not cfg.trainer.init_from:
        return None
    try:
        check_warm_start(cfg.trainer.init_from, cfg.trainer.lora_rank, "trainer.init_from")
    except ConfigError as exc:
        return str(exc)
    return None


def _in_hf_cache(repo_id: str) -> bool:
    """Whether an HF model id has its config.json in the local hub cache (what offline loading reads)."""
    if repo_id.startswith((".", "/", "~")) or repo_id.count("/") != 1:
        return False
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


# --------------------------------------------------------------------------- data
def _synthetic_data_problem(cfg: SearchR1Config) -> Optional[str]:
    """Synthetic data is generated as a whole set when all three paths are missing; one missing
    beside existing ones is a typo or a damaged set, and regenerating would overwrite the others."""
    if cfg.data.name != "synthetic":
        return None  # real data: ensure_data names the command that makes a missing file
    paths = {key: Path(getattr(cfg.data, key)).expanduser() for key in _SYNTHETIC_KEYS}
    missing = [key for key, path in paths.items() if not path.is_file()]
    if not missing:
        return None
    if len(missing) < len(paths):
        present = next(key for key in paths if key not in missing)
        return (
            f"data.{missing[0]}={paths[missing[0]]}: file not found, but data.{present} exists; synthetic data is "
            "generated only as a whole set (fix the path, or point all three paths at a new dir)"
        )
    if not paths["train_path"].resolve().is_relative_to(cache_root().resolve()):
        log.warning(
            "data.train_path, data.test_path and data.corpus_path do not exist: generating the synthetic "
            "set there (data.seed=%d, data.num_entities=%d)",
            cfg.data.seed,
            cfg.data.num_entities,
        )
    return None


# --------------------------------------------------------------------------- search
def _search_problems(cfg: SearchR1Config, env: Mapping[str, str]) -> list[Optional[str]]:
    if not cfg.search.enabled:
        return []  # no search is ever sent
    if cfg.search.replay_path:
        return [file_problem("search.replay_path", cfg.search.replay_path, "a run with search.record=true")]
    if cfg.backend.name == "google":
        return [secret_problem(env, cfg.backend.api_key_env, "backend.api_key_env")]
    if cfg.backend.urls:
        bad = [url_problem("backend.urls", url) for url in cfg.backend.urls]
        if any(bad):
            return bad
        return [retriever_problem(url, RETRIEVER_PROBE_TIMEOUT_S) for url in cfg.backend.urls]
    return _embedded_retriever_problems(cfg)


def _embedded_retriever_problems(cfg: SearchR1Config) -> list[Optional[str]]:
    from searchr1.retriever.index import index_ready, resolve_index_dir

    rcfg = cfg.retriever
    index_dir = resolve_index_dir(Path(cfg.data.corpus_path).expanduser(), rcfg)
    problems = [_encoder_problem(rcfg.encoder)] if rcfg.kind == "dense" else []
    if index_ready(index_dir, rcfg):
        return problems
    if index_dir.suffix == ".index":  # a FAISS file such as Search-R1's e5_Flat.index: we do not build those
        problems.append(
            f"retriever.index_dir={index_dir}: no index file there (Search-R1's e5_Flat.index comes "
            f"with `searchr1-data download --out {index_dir.parent}`)"
        )
    else:  # the embedded retriever builds it on first use
        problems.append(writable_dir_problem("retriever.index_dir", index_dir))
    return problems


def _encoder_problem(name: str) -> Optional[str]:
    from searchr1.retriever.encoder import resolve_encoder

    try:
        path = Path(resolve_encoder(name)).expanduser()
    except FileNotFoundError as exc:
        return f"retriever.encoder={name}: {exc}"
    if (path / "config.json").is_file() or _in_hf_cache(name):
        return None
    return f"retriever.encoder={name}: no such dir, and not in the local Hugging Face cache (encoders load offline)"
