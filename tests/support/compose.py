"""Compose configs exactly as the CLI does (same config module, same schemas, same validation)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from searchr1.cli import CONFIG_MODULE, CONFIG_NAME, VERSION_BASE
from searchr1.config import register_configs

REPO = Path(__file__).resolve().parents[2]


def compose_config(overrides: list[str] | tuple[str, ...] = (), *, hydra_node: bool = False) -> DictConfig:
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base=VERSION_BASE):
            return compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=hydra_node)
    finally:
        GlobalHydra.instance().clear()


def shipped_yaml_files() -> list[Path]:
    return sorted(p for d in ("conf", "experiments", "sweeps") for p in (REPO / d).rglob("*.yaml")
                  if "experiment" not in p.relative_to(REPO).parts[1:2] and "sweep" not in p.relative_to(REPO).parts[1:2])
