"""Compose the shipped config outside a Hydra run: the precheck, tests, benchmarks, and the retriever
command line (which takes its defaults from a ``retriever=<kind>`` option)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from searchr1.config.store import register_configs

CONFIG_MODULE = "searchr1.conf"
CONFIG_NAME = "config"
VERSION_BASE = "1.3"


@dataclass(frozen=True)
class ConfigSource:
    """Where the primary config comes from: ours, or what ``--config-path``, ``--config-name`` and
    ``--config-dir`` say on a Hydra command line."""

    primary: str = f"pkg://{CONFIG_MODULE}"
    """Primary config dir, as a Hydra search-path entry (``pkg://module`` or a directory)."""
    name: str | None = CONFIG_NAME
    """Primary config file; None composes only what the overrides select."""
    extra_dir: str | None = None
    """An absolute ``--config-dir``: searched after the primary dir."""
    job_name: str = "app"
    """``hydra.job.name`` when the primary config sets none (Hydra's main names the job after its module)."""


@contextmanager
def hydra_initialized(source: ConfigSource = ConfigSource()) -> Iterator[None]:
    """Hydra's compose API set up for ``source`` (and torn down: multirun and tests share a process)."""
    register_configs()
    GlobalHydra.instance().clear()
    scheme, _, location = source.primary.partition("://")
    init: initialize_config_module | initialize_config_dir
    if scheme == "pkg":
        module = location.replace("/", ".")
        init = initialize_config_module(config_module=module, job_name=source.job_name, version_base=VERSION_BASE)
    else:
        directory = location or source.primary
        init = initialize_config_dir(config_dir=directory, job_name=source.job_name, version_base=VERSION_BASE)
    try:
        with init:
            yield
    finally:
        GlobalHydra.instance().clear()


def compose_in(source: ConfigSource, overrides: list[str], *, return_hydra_config: bool = False) -> DictConfig:
    """Compose inside ``hydra_initialized(source)``."""
    # --config-dir adds a search-path entry; hydra.searchpath is the compose API's way to say the same.
    extra = [f"hydra.searchpath=[file://{source.extra_dir}]"] if source.extra_dir else []
    return compose(config_name=source.name, overrides=[*overrides, *extra], return_hydra_config=return_hydra_config)


def compose_config(overrides: list[str], *, return_hydra_config: bool = False) -> DictConfig:
    """Compose the primary config as the CLI does, outside any Hydra run (tests, benchmarks)."""
    with hydra_initialized():
        return compose_in(ConfigSource(), overrides, return_hydra_config=return_hydra_config)


def group_option(group: str, option: str) -> DictConfig:
    """One group option as Hydra composes it (its YAML over its schema), e.g. ``retriever``/``dense``."""
    source = ConfigSource(name=None)
    with hydra_initialized(source):
        return compose_in(source, [f"+{group}={option}"])[group]
