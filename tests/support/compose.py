"""Compose configs exactly as the CLI does (same config module, same schemas, same validation)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from searchr1.config.compose import compose_config as cli_compose_config

REPO = Path(__file__).resolve().parents[2]


def compose_config(overrides: list[str] | tuple[str, ...] = (), *, hydra_node: bool = False) -> DictConfig:
    return cli_compose_config(list(overrides), return_hydra_config=hydra_node)


def shipped_yaml_files() -> list[Path]:
    return sorted(
        p
        for d in ("conf", "experiments", "sweeps")
        for p in (REPO / d).rglob("*.yaml")
        if "experiment" not in p.relative_to(REPO).parts[1:2] and "sweep" not in p.relative_to(REPO).parts[1:2]
    )


def miles_presets() -> list[str]:
    """The presets that run on Miles, by their composed trainer (a preset that builds on one counts too)."""
    names = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))
    return [name for name in names if compose_config([f"+experiment={name}"]).trainer.name == "miles"]
