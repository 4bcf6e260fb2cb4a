"""Checks before a Miles launch: everything that would otherwise fail minutes into a GPU job.

Each problem is one line that names the config key or environment variable to fix.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Optional

from searchr1.config.checks import ConfigError
from searchr1.config.schema import MilesTrainerConfig, SearchR1Config

RETRIEVER_TIMEOUT_S = 5.0


class PreflightError(ConfigError):
    """One or more preflight problems, one per line."""


def preflight(cfg: SearchR1Config, *, env: Mapping[str, str], need_ray_cli: bool = True) -> list[str]:
    """Every problem found (empty: good to launch). Cheap: nothing is started or built."""
    trainer: MilesTrainerConfig = cfg.trainer
    checks: list[Callable[[], Optional[str]]] = [
        lambda: _miles_checkout(trainer),
        lambda: _megatron_checkout(trainer),
        lambda: _file("data.train_path", cfg.data.train_path),
        lambda: _file("data.test_path", cfg.data.test_path) if trainer.eval_interval else None,
        lambda: _hf_checkpoint(cfg.model.hf_checkpoint),
        lambda: _torch_dist(cfg, trainer),
        lambda: None if cfg.model.megatron_args else
        f"model.megatron_args is empty for model {cfg.model.name!r}: Miles needs its architecture flags",
        lambda: _secret(env, cfg.backend.api_key_env, "backend.api_key_env") if cfg.backend.name == "google" else None,
        lambda: _secret(env, cfg.logger.api_key_env, "logger.api_key_env (or logger.mode=offline)")
        if cfg.logger.mode == "online" else None,
        lambda: None if not need_ray_cli or shutil.which("ray") else
        "the 'ray' command is not on PATH (run inside the Miles container, or pip install 'ray[default]')",
    ]
    problems = [problem for check in checks if (problem := check())]
    if cfg.backend.name == "local":
        problems += _retriever_problems(cfg, trainer)
    return problems


def _retriever_problems(cfg: SearchR1Config, t: MilesTrainerConfig) -> list[str]:
    if cfg.backend.urls:
        return [p for url in cfg.backend.urls if (p := retriever_problem(url))]
    if t.ray_address:  # the embedded retriever listens on this machine's 127.0.0.1 only
        return ["backend.urls is empty but trainer.ray_address is a remote cluster: start a retriever its nodes "
                "can reach (`searchr1-retriever serve`) and pass backend.urls=[http://HOST:PORT]"]
    problem = _file("data.corpus_path", cfg.data.corpus_path, "searchr1-data download")
    return [problem + " (the embedded retriever indexes it)"] if problem else []


def raise_on_problems(problems: list[str]) -> None:
    if problems:
        raise PreflightError("Miles preflight failed:\n" + "\n".join(f"  - {p}" for p in problems))


def _miles_checkout(t: MilesTrainerConfig) -> Optional[str]:
    if (Path(t.miles_root) / "train.py").is_file():
        return None
    return f"trainer.miles_root={t.miles_root}: no Miles checkout there (train.py missing)"


def _megatron_checkout(t: MilesTrainerConfig) -> Optional[str]:
    if (Path(t.megatron_root) / "megatron").is_dir():
        return None
    return f"trainer.megatron_root={t.megatron_root}: no Megatron-LM checkout there (megatron/ missing)"


def _file(key: str, path: str, command: str = "searchr1-data prepare") -> Optional[str]:
    if Path(path).is_file():
        return None
    return f"{key}={path}: file not found (make it with `{command}`)"


def _hf_checkpoint(path: str) -> Optional[str]:
    if (Path(path) / "config.json").is_file():
        return None
    return f"model.hf_checkpoint={path}: no HF checkpoint there (config.json missing)"


def _torch_dist(cfg: SearchR1Config, t: MilesTrainerConfig) -> Optional[str]:
    ref = cfg.model.ref_load
    if not ref:
        return "model.ref_load is not set: Miles starts the actor from this torch_dist checkpoint" if not cfg.model.load else None
    # Miles reads the iteration marker at parse time when the KL loss is on.
    if (Path(ref) / "latest_checkpointed_iteration.txt").is_file():
        return None
    kl = " (needed by the KL loss: grpo.kl_loss_coef > 0)" if cfg.grpo.kl_loss_coef > 0 else ""
    return (f"model.ref_load={ref}: no torch_dist checkpoint there (latest_checkpointed_iteration.txt missing){kl}; "
            "convert the HF checkpoint with Miles' tools/convert_hf_to_torch_dist.py")


def _secret(env: Mapping[str, str], name: str, key: str) -> Optional[str]:
    if env.get(name):
        return None
    return f"environment variable {name} is not set ({key} names it); export it before launching"


def retriever_problem(url: str) -> Optional[str]:
    """None when the retriever answers a one-query /retrieve (works for ours and Search-R1's server)."""
    body = json.dumps({"queries": ["preflight"], "topk": 1, "return_scores": False}).encode()
    request = urllib.request.Request(url.rstrip("/") + "/retrieve", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=RETRIEVER_TIMEOUT_S) as response:
            if "result" in json.loads(response.read()):
                return None
            return f"retriever {url} answered /retrieve without a 'result' field (not a Search-R1 retrieval server?)"
    except urllib.error.HTTPError as exc:
        return f"retriever {url} answered /retrieve with HTTP {exc.code} (backend.urls)"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"retriever {url} is not reachable ({getattr(exc, 'reason', exc)}); start it or fix backend.urls"
