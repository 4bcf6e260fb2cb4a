"""One run's context: the typed config, its run dir and name, the resolved config it saves, its secrets.

Everything that runs a job (the CLI, both trainers, eval) imports this; it imports none of them."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, cast

import yaml
from omegaconf import DictConfig, OmegaConf

from searchr1.config.schema import SearchR1Config
from searchr1.config.secrets import redact_data, secret_env_names, secret_values
from searchr1.paths import RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """Everything a trainer needs to know about the run besides the typed config."""

    cfg: SearchR1Config
    run_dir: Path
    run_name: str
    choices: dict[str, str] = field(default_factory=dict)
    """Selected option per config group (Hydra's runtime choices)."""
    sweep_point: dict[str, str] = field(default_factory=dict)
    """The overrides that make this run (key=value), e.g. rollout.max_turns=2."""
    resolved: dict[str, Any] = field(default_factory=dict)
    """Fully resolved config as plain containers, for W&B and the run dir. Holds no secrets."""
    secrets: tuple[str, ...] = ()

    @classmethod
    def from_hydra(cls, cfg: DictConfig, typed: SearchR1Config) -> "RunContext":
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
        choices = {k: str(v) for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
        sweep_point = dict(o.split("=", 1) for o in hydra_cfg.overrides.task if "=" in o)
        return cls.build(cfg, typed, Path(hydra_cfg.runtime.output_dir), choices, sweep_point)

    @classmethod
    def build(
        cls,
        cfg: DictConfig,
        typed: SearchR1Config,
        run_dir: Path,
        choices: dict[str, str] | None = None,
        sweep_point: dict[str, str] | None = None,
    ) -> "RunContext":
        choices, sweep_point = choices or {}, sweep_point or {}
        secrets = tuple(secret_values(secret_env_names(typed)))
        resolved = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
        return cls(
            cfg=typed,
            run_dir=run_dir,
            run_name=typed.logger.run_name or default_run_name(typed, sweep_point),
            choices=choices,
            sweep_point=sweep_point,
            resolved=redact_data(resolved, secrets),  # it goes to W&B as is: a key pasted into config must not
            secrets=secrets,
        )


# Overrides that say nothing about what a run learns, or that the name already shows (trainer, model,
# backend, turns, topk). A run moved to another cluster, checkout or disk, or resumed, keeps its name
# (its W&B group and shared job dir).
_WHERE_IT_RUNS = {
    "trainer.dry_run",
    "trainer.ray_address",
    "trainer.shared_dir",
    "trainer.remote_preflight",
    "trainer.miles_root",
    "trainer.megatron_root",
    "trainer.node_gpus",
    "trainer.env",
    "trainer.checkpoint_dir",
    "trainer.resume",
    "trainer.threads",
    "backend.urls",
    "backend.embedded_port",
    "retriever.host",
}
_NOT_IN_RUN_NAME = {
    "experiment",
    "sweep",
    "trainer",
    "model",
    "backend",
    "rollout.max_turns",
    "search.topk",
    *_WHERE_IT_RUNS,
}
_PREFIXES_NOT_IN_RUN_NAME = ("hydra.", "logger.")


def default_run_name(cfg: SearchR1Config, sweep_point: dict[str, str]) -> str:
    """Say the run: sweep (Miles makes the name its W&B group), trainer, model, backend, then the sweep point."""
    parts = [cfg.sweep_name] if cfg.sweep_name else []
    parts += [cfg.trainer.name, cfg.model.name, cfg.backend.name, f"t{cfg.rollout.max_turns}", f"k{cfg.search.topk}"]
    parts += [
        f"{key.split('.')[-1].lstrip('+')}={short_value(value)}"
        for key, value in sorted(sweep_point.items())
        if not _names_no_point(key)
    ]
    return "-".join(parts)


MAX_VALUE_CHARS = 24


def short_value(value: str) -> str:
    """A sweep value as the run name shows it: a path by its file name plus a hash of the whole path
    (two train.parquet in different dirs stay apart), a long value cut short plus a hash. The full
    override stays in the config (resolved_config.yaml, W&B config); the name only has to be readable."""
    text = value.strip("'\"")
    digest = hashlib.sha1(value.encode()).hexdigest()[:6]
    if "/" in text:
        return f"{PurePosixPath(text.rstrip('/')).name or 'root'}~{digest}"
    if len(text) > MAX_VALUE_CHARS:
        return f"{text[: MAX_VALUE_CHARS - 8]}~{digest}"
    return text


def _names_no_point(key: str) -> bool:
    key = key.lstrip("+~")
    return key in _NOT_IN_RUN_NAME or key.startswith(_PREFIXES_NOT_IN_RUN_NAME)


def save_resolved_config(ctx: RunContext) -> Path:
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.run_dir / RunDir.RESOLVED_CONFIG
    path.write_text(yaml.safe_dump(redact_data(ctx.resolved, ctx.secrets), sort_keys=False))
    return path
