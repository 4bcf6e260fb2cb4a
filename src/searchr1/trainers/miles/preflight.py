"""Checks before a Miles launch: everything that would otherwise fail minutes into a GPU job.

Each problem is one line that names the config key or environment variable to fix.
"""

from __future__ import annotations

import shutil
from typing import Callable, Mapping, Optional

from searchr1.config.schema import MilesTrainerConfig, SearchR1Config
from searchr1.trainers.miles.cluster_check import path_checks
from searchr1.preflight import PreflightError, file_problem as _file
from searchr1.preflight import secret_problem as _secret, writable_dir_problem
from searchr1.retriever.embedded import embedded_retriever_problems, needs_embedded_retriever
from searchr1.tools.preflight import tool_problems

__all__ = ["PreflightError", "preflight", "raise_on_problems"]


def preflight(
    cfg: SearchR1Config, *, env: Mapping[str, str], need_ray_cli: bool = True, on_cluster: bool = False
) -> list[str]:
    """Every problem found (empty: good to launch). Cheap: nothing is started or built.

    ``on_cluster``: checkouts, data, checkpoints and retriever URLs are checked on every node of the
    cluster instead (:mod:`searchr1.trainers.miles.cluster_check`), where the job reads them."""
    trainer = MilesTrainerConfig.of(cfg)
    checks: list[Callable[[], Optional[str]]] = [
        lambda: (
            None
            if cfg.model.ref_load or cfg.model.load
            else "model.ref_load is not set: Miles starts the actor from this torch_dist checkpoint"
        ),
        lambda: (
            None
            if cfg.model.megatron_args
            else f"model.megatron_args is empty for model {cfg.model.name!r}: Miles needs its architecture flags"
        ),
        lambda: (
            _secret(env, cfg.logger.api_key_env, "logger.api_key_env (or logger.mode=offline)")
            if cfg.logger.mode == "online"
            else None
        ),
        lambda: (
            None
            if not need_ray_cli or shutil.which("ray")
            else "the 'ray' command is not on PATH (run inside the Miles container, or pip install 'searchr1[miles]')"
        ),
        lambda: writable_dir_problem("trainer.shared_dir", trainer.shared_dir) if trainer.shared_dir else None,
    ]
    problems = [] if on_cluster else [check.problem for check in path_checks(cfg) if not check.holds()]
    problems += [problem for check in checks if (problem := check())]
    problems += tool_problems(cfg, env, endpoints=not on_cluster)
    if needs_embedded_retriever(cfg):
        problems += _embedded_retriever_problems(cfg, trainer)
    return problems


def _embedded_retriever_problems(cfg: SearchR1Config, t: MilesTrainerConfig) -> list[str]:
    if t.ray_address:  # the embedded retriever listens on this machine's 127.0.0.1 only
        return [
            "backend.urls is empty but trainer.ray_address is a remote cluster: start a retriever its nodes "
            "can reach (`searchr1-retriever serve`) and pass backend.urls=[http://HOST:PORT]"
        ]
    problem = _file("data.corpus_path", cfg.data.corpus_path, "searchr1-data download")
    if problem:
        return [problem + " (the embedded retriever indexes it)"]
    return embedded_retriever_problems(cfg)


def raise_on_problems(problems: list[str]) -> None:
    if problems:
        raise PreflightError("Miles preflight failed:\n" + "\n".join(f"  - {p}" for p in problems))
