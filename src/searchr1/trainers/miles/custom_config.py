"""The YAML Miles receives through ``--custom-config-path``, and its reading inside the hooks.

Miles ``setattr``s every top-level key of that YAML onto ``args`` with no checks, overriding any
Miles or Megatron argument of the same name. So everything of ours lives under ONE key,
``searchr1``, and the only other top-level keys are the TIS keys Miles' mis.yaml defines (there is
a single custom-config path, so they have to share the file). The hooks rebuild our typed configs
from ``args.searchr1``, which re-runs every range check on the worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from searchr1.config.schema import (
    BackendConfig,
    HealthConfig,
    HealthRuleConfig,
    RewardConfig,
    RolloutConfig,
    SearchR1Config,
    TisConfig,
    ToolConfig,
    backend_config,
)
from searchr1.paths import RunDir
from searchr1.tools.registry import selected_nodes, typed_nodes

NAMESPACE = "searchr1"
CUSTOM_CONFIG_FILE = "miles_custom_config.yaml"


def build_custom_config(
    cfg: SearchR1Config, *, run_dir: Path, run_name: str, retriever_urls: Optional[list[str]] = None
) -> dict[str, Any]:
    """Our rollout/tools/reward settings under ``searchr1``, plus the mis.yaml TIS keys. ``retriever_urls``: a
    retriever the launcher started (the embedded one), which the search tool then sends to."""
    backend = dataclasses.asdict(cfg.backend)
    if retriever_urls is not None:
        backend["urls"] = list(retriever_urls)
    ours = {
        "run_dir": str(run_dir),
        "run_name": run_name,
        "sweep_name": cfg.sweep_name,  # Miles logs args to W&B: lets dashboards gather a sweep's runs
        "hf_checkpoint": cfg.model.hf_checkpoint,
        "backend": backend,
        "tools": {name: dataclasses.asdict(node) for name, node in selected_nodes(cfg).items()},
        "rollout": dataclasses.asdict(cfg.rollout),
        "reward": dataclasses.asdict(cfg.reward),
        "health": dataclasses.asdict(cfg.health),
    }
    return {NAMESPACE: ours, **mis_keys(cfg.tis)}


def mis_keys(tis: TisConfig) -> dict[str, Any]:
    """The keys of Miles' mis.yaml, from our TIS config (no rejection sampling: we weight, never drop)."""
    return {
        "use_tis": tis.enabled,
        "use_rs": False,
        "tis_level": tis.level,
        "rs_level": tis.level,
        "tis_mode": tis.mode,
        "tis_lower_bound": tis.lower_bound,
        "tis_upper_bound": tis.upper_bound,
        "rs_lower_bound": None,
        "rs_upper_bound": None,
        "rs_veto_threshold": None,
        "tis_batch_normalize": tis.batch_normalize,
    }


def write_custom_config(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # safe_dump writes floats with a dot (1.0e-06), which Miles' yaml.safe_load reads back as floats.
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass(frozen=True)
class HookSettings:
    """What the hooks need, typed again on the worker."""

    run_dir: Path
    run_name: str
    hf_checkpoint: str
    backend: BackendConfig
    tools: dict[str, ToolConfig]
    """The run's tools in order, each with its config node."""
    rollout: RolloutConfig
    reward: RewardConfig
    tis: TisConfig
    health: HealthConfig

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / RunDir.METRICS

    @classmethod
    def from_args(cls, args: Any) -> "HookSettings":
        raw = getattr(args, NAMESPACE, None)
        if not isinstance(raw, dict):
            raise RuntimeError(
                f"Miles args carry no '{NAMESPACE}' settings: was --custom-config-path "
                f"{CUSTOM_CONFIG_FILE} passed? (searchr1 writes it into the run dir)"
            )
        return cls(
            run_dir=Path(raw["run_dir"]),
            run_name=raw["run_name"],
            hf_checkpoint=raw["hf_checkpoint"],
            backend=backend_config(raw["backend"]),
            tools=typed_nodes(raw["tools"]),
            rollout=RolloutConfig(**raw["rollout"]),
            reward=RewardConfig(**raw["reward"]),
            tis=tis_config_from_args(args),
            health=health_config(raw.get("health", {})),
        )


def health_config(raw: dict[str, Any]) -> HealthConfig:
    """``health.*`` as written by build_custom_config (its rules are nested dicts)."""
    values: dict[str, Any] = {
        key: HealthRuleConfig(**value) if isinstance(value, dict) else value for key, value in raw.items()
    }
    return HealthConfig(**values)


def tis_config_from_args(args: Any) -> TisConfig:
    """Our TIS config from the mis.yaml keys on ``args`` (``use_tis`` is Miles' own switch)."""
    if getattr(args, "use_rs", False):
        raise RuntimeError("use_rs=true (rejection sampling) is not supported by searchr1's TIS hook")
    upper = float(args.tis_upper_bound)
    lower = args.tis_lower_bound
    return TisConfig(
        enabled=bool(args.use_tis),
        level=args.tis_level,
        mode=args.tis_mode,
        upper_bound=upper,
        lower_bound=1.0 / upper if lower is None else float(lower),  # mis.py's default
        batch_normalize=bool(getattr(args, "tis_batch_normalize", False)),
    )
