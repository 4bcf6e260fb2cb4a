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

from searchr1.config.schema import LocalTrainerConfig, SearchR1Config
from searchr1.paths import RunDir, cache_root
from searchr1.preflight import in_hf_cache, raise_on_problems, writable_dir_problem
from searchr1.retriever.embedded import embedded_retriever_problems, needs_embedded_retriever
from searchr1.tools.preflight import tool_problems

log = logging.getLogger(__name__)


def run_preflight(cfg: SearchR1Config, run_dir: Path) -> None:
    """Raise one PreflightError (a ConfigError: one line per problem, exit 2) if anything is wrong."""
    raise_on_problems(preflight(cfg, run_dir, env=os.environ), "local trainer preflight failed")


def preflight(cfg: SearchR1Config, run_dir: Path, *, env: Mapping[str, str]) -> list[str]:
    """Every problem found (empty: good to start)."""
    trainer = LocalTrainerConfig.of(cfg)
    problems = [
        _model_problem(cfg),
        _warm_start_problem(trainer),
        writable_dir_problem("hydra.run.dir", run_dir),
        writable_dir_problem("trainer.checkpoint_dir", RunDir(run_dir).checkpoint_dir(trainer.checkpoint_dir))
        if trainer.checkpoint_every
        else None,
        _synthetic_data_problem(cfg),
        *tool_problems(cfg, env),
        *(embedded_retriever_problems(cfg) if needs_embedded_retriever(cfg) else []),
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
    if in_hf_cache(name):
        return None
    return f"{key}={name}: no such dir, and not in the local Hugging Face cache (models load offline)"


def _warm_start_problem(trainer: LocalTrainerConfig) -> Optional[str]:
    from searchr1.config.checks import ConfigError
    from searchr1.models.loading import check_warm_start

    if not trainer.init_from:
        return None
    try:
        check_warm_start(trainer.init_from, trainer.lora_rank, "trainer.init_from")
    except ConfigError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- data
def _synthetic_data_problem(cfg: SearchR1Config) -> Optional[str]:
    """Synthetic data is generated only as a whole set into one dir (``synthetic_set_problem`` says why
    anything else is refused); one outside the cache is generated with a warning."""
    from searchr1.data import data_paths, synthetic_set_problem

    if cfg.data.name != "synthetic":
        return None  # real data: ensure_data names the command that makes a missing file
    paths = data_paths(cfg.data)
    problem = synthetic_set_problem(paths)
    if problem or all(path.is_file() for path in paths.values()):
        return problem
    if not paths["train_path"].resolve().is_relative_to(cache_root().resolve()):
        log.warning(
            "data.train_path, data.test_path and data.corpus_path do not exist: generating the synthetic "
            "set there (data.seed=%d, data.num_entities=%d)",
            cfg.data.seed,
            cfg.data.num_entities,
        )
    return None
