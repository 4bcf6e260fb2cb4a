"""What every searchr1 Hydra program shares: register the schemas, reject a bad command line in one
line, compose outside a run (tests, benchmarks), and run a body on the typed config."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from hydra import compose, initialize_config_dir, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import compute_search_path_dir, get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig

from searchr1.config import ConfigError, register_configs, to_typed
from searchr1.config.validate import one_line_error
from searchr1.data.errors import DataError
from searchr1.run import RunContext

CONFIG_MODULE = "searchr1.conf"
CONFIG_NAME = "config"
VERSION_BASE = "1.3"

log = logging.getLogger("searchr1")

# Hydra flags that compose no config to run (help, version, shell completion, --info).
_NOTHING_TO_RUN = ("help", "hydra_help", "shell_completion", "info", "experimental_rerun")


@dataclass(frozen=True)
class ConfigSource:
    """Where the primary config comes from: ours, or what ``--config-path``, ``--config-name`` and
    ``--config-dir`` say on the command line (resolved as Hydra resolves them)."""

    primary: str = f"pkg://{CONFIG_MODULE}"
    name: str = CONFIG_NAME
    extra_dir: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, calling_module: str) -> "ConfigSource":
        primary = cls.primary
        if args.config_path is not None:
            primary = compute_search_path_dir(None, calling_module, args.config_path) or primary
        extra_dir = os.path.abspath(args.config_dir) if args.config_dir is not None else None
        return cls(primary=primary, name=args.config_name or CONFIG_NAME, extra_dir=extra_dir)


def start(program: str, hydra_main: Callable[[], None]) -> None:
    """Register the schemas, reject a bad command line in one line, then hand over to a Hydra main."""
    register_configs()
    error = precheck(sys.argv[1:], calling_module=hydra_main.__module__)
    if error:
        print(f"{program}: config error: {error}", file=sys.stderr)
        raise SystemExit(2)
    hydra_main()


def precheck(argv: list[str], *, calling_module: str = "searchr1.cli") -> str | None:
    """Compose and validate every job the command line would start (each sweep point of a multirun)
    before Hydra starts anything, so a typo costs one line, not a run."""
    args = _hydra_args(argv)
    if args is None or any(getattr(args, flag) for flag in _NOTHING_TO_RUN):
        return None  # Hydra reports a malformed command line itself; help and the like run nothing
    source = ConfigSource.from_args(args, calling_module)
    jobs: list[list[str]] = []
    job: list[str] = []
    try:
        with hydra_initialized(source):
            jobs = job_overrides(args, source)
            for job in jobs:
                to_typed(_compose(source, job))
    except Exception as exc:  # Hydra's composition errors come in many classes, all user-facing
        message = str(exc) if isinstance(exc, ConfigError) else one_line_error(exc)
        return f"{message} (sweep job: {' '.join(job)})" if len(jobs) > 1 else message
    return None


def job_overrides(args: argparse.Namespace, source: ConfigSource) -> list[list[str]]:
    """The overrides of each job Hydra would start: one list, or one per sweep point in a multirun
    (``-m`` or a sweep preset's ``hydra.mode: MULTIRUN``), expanded by Hydra's basic sweeper."""
    base = _compose(source, without_sweep_axes(args.overrides), return_hydra_config=True)
    if args.cfg or not (args.multirun or base.hydra.mode == RunMode.MULTIRUN):
        return [args.overrides]  # a sweep axis here is an error, reported by composing it
    axes = [f"{key}={value}" for key, value in (base.hydra.sweeper.params or {}).items()]
    parsed = OverridesParser.create().parse_overrides(axes + args.overrides)
    return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch]


def compose_config(overrides: list[str], *, return_hydra_config: bool = False) -> DictConfig:
    """Compose the primary config as the CLI does, outside any Hydra run (tests, benchmarks)."""
    source = ConfigSource()
    with hydra_initialized(source):
        return _compose(source, overrides, return_hydra_config=return_hydra_config)


@contextmanager
def hydra_initialized(source: ConfigSource) -> Iterator[None]:
    """Hydra's compose API set up for ``source`` (and torn down: multirun and tests share a process)."""
    register_configs()
    GlobalHydra.instance().clear()
    scheme, _, location = source.primary.partition("://")
    if scheme == "pkg":
        init = initialize_config_module(config_module=location.replace("/", "."), version_base=VERSION_BASE)
    else:
        init = initialize_config_dir(config_dir=location or source.primary, version_base=VERSION_BASE)
    try:
        with init:
            yield
    finally:
        GlobalHydra.instance().clear()


def _compose(source: ConfigSource, overrides: list[str], *, return_hydra_config: bool = False) -> DictConfig:
    # --config-dir adds a search-path entry; hydra.searchpath is the compose API's way to say the same.
    extra = [f"hydra.searchpath=[file://{source.extra_dir}]"] if source.extra_dir else []
    return compose(config_name=source.name, overrides=[*overrides, *extra], return_hydra_config=return_hydra_config)


def _hydra_args(argv: list[str]) -> argparse.Namespace | None:
    """The command line as Hydra's own parser reads it; None when it does not parse."""
    if "--version" in argv:  # the parser would print the version itself
        return None
    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        args, unknown = parser.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):
        return None
    return None if unknown else args


def without_sweep_axes(overrides: list[str]) -> list[str]:
    """Drop sweep axes (``seed=0,1,2``): a sweep preset makes them legal without -m, but one config
    cannot compose them. Each job's values are validated on their own (``job_overrides``)."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # a malformed override: let compose report it in its own words
        return overrides
    return [text for text, override in zip(overrides, parsed) if not override.is_sweep_override()]


def run_checked(cfg: DictConfig, body: Callable[[RunContext], object]) -> None:
    """Type the config and run ``body``; config and data problems end the job in one line (exit 2)."""
    try:
        typed = to_typed(cfg)
    except ConfigError as exc:
        log.error("config error: %s", exc)
        raise SystemExit(2) from None
    try:
        body(RunContext.from_hydra(cfg, typed))
    except (ConfigError, DataError) as exc:  # found after start-up (missing key, missing data file)
        log.error("%s", exc)
        raise SystemExit(2) from None
