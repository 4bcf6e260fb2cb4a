"""What every searchr1 Hydra program shares: register the schemas, reject a bad command line in one
line, compose outside a run (tests, benchmarks), and run a body on the typed config."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from searchr1.config import ConfigError, register_configs, to_typed
from searchr1.config.validate import one_line_error
from searchr1.data.errors import DataError
from searchr1.run import RunContext

CONFIG_MODULE = "searchr1.conf"
CONFIG_NAME = "config"
VERSION_BASE = "1.3"

log = logging.getLogger("searchr1")

# Flags after which the next argv item is a value, not an override.
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i"}
# Flags that change what is composed (or compose nothing): leave those to Hydra.
_SKIP_PRECHECK = {
    "-m", "--multirun", "--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn",
    "--help", "-h", "--hydra-help", "--version", "--shell-completion", "-sc",
}


def start(program: str, hydra_main: Callable[[], None]) -> None:
    """Register the schemas, reject a bad command line in one line, then hand over to a Hydra main."""
    register_configs()
    error = precheck(sys.argv[1:])
    if error:
        print(f"{program}: config error: {error}", file=sys.stderr)
        raise SystemExit(2)
    hydra_main()


def precheck(argv: list[str]) -> str | None:
    """Compose and validate once before Hydra starts anything, so a typo costs one line, not a run."""
    if any(arg.split("=")[0] in _SKIP_PRECHECK for arg in argv):
        return None
    try:
        to_typed(compose_config(without_sweep_axes(overrides_in(argv))))
    except ConfigError as exc:
        return str(exc)
    except Exception as exc:  # Hydra's composition errors come in many classes, all user-facing
        return one_line_error(exc)
    return None


def compose_config(overrides: list[str], *, return_hydra_config: bool = False) -> DictConfig:
    """Compose the primary config as the CLI does, outside any Hydra run (tests, benchmarks)."""
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base=VERSION_BASE):
            return compose(config_name=CONFIG_NAME, overrides=overrides, return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()


def overrides_in(argv: list[str]) -> list[str]:
    overrides, skip_next = [], False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg in _VALUE_FLAGS:
            skip_next = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides


def without_sweep_axes(overrides: list[str]) -> list[str]:
    """Drop sweep axes (``seed=0,1,2``): a sweep preset makes them legal without -m, but one config
    cannot compose them. Each job's values are still validated when it starts."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

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
