"""What every searchr1 Hydra program shares: register the schemas, reject a bad command line in one
line before Hydra starts anything, and run a body on the typed config."""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import compute_search_path_dir, get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.errors import OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from searchr1.config import ConfigError, register_configs, to_typed
from searchr1.config.compose import (
    CONFIG_MODULE,
    CONFIG_NAME,
    VERSION_BASE,
    ConfigSource,
    compose_in,
    hydra_initialized,
)
from searchr1.config.validate import one_line_error
from searchr1.errors import USER_ERROR_EXIT, UserError
from searchr1.paths import RunDir
from searchr1.preflight import RUN_LOCK_FILE, remove_unused_run_dir, writable_dir_problem
from searchr1.run import RunContext

# The Hydra mains (searchr1, searchr1-eval) take their config location from here, with start and run_checked.
__all__ = ["CONFIG_MODULE", "CONFIG_NAME", "VERSION_BASE", "precheck", "run_checked", "start"]

# Hydra flags that compose no config to run (help, version, shell completion, --info).
_NOTHING_TO_RUN = ("help", "hydra_help", "shell_completion", "info", "experimental_rerun")


def config_source(args: argparse.Namespace, calling_module: str) -> ConfigSource:
    """What ``--config-path``, ``--config-name`` and ``--config-dir`` select, resolved as Hydra does."""
    primary = ConfigSource.primary
    if args.config_path is not None:
        primary = compute_search_path_dir(None, calling_module, args.config_path) or primary
    extra_dir = os.path.abspath(args.config_dir) if args.config_dir is not None else None
    return ConfigSource(primary=primary, name=args.config_name or CONFIG_NAME, extra_dir=extra_dir)


def start(program: str, hydra_main: Callable[[], None]) -> None:
    """Register the schemas, reject a bad command line in one line, then hand over to a Hydra main."""
    register_configs()
    error = precheck(sys.argv[1:], calling_module=hydra_main.__module__)
    if error:
        print(f"{program}: config error: {error}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT)
    hydra_main()


def precheck(argv: list[str], *, calling_module: str = "searchr1.cli") -> str | None:
    """Compose and validate every job the command line would start (each sweep point of a multirun)
    before Hydra starts anything, so a typo costs one line, not a run."""
    args = _hydra_args(argv)
    if args is None or any(getattr(args, flag) for flag in _NOTHING_TO_RUN):
        return None  # Hydra reports a malformed command line itself; help and the like run nothing
    source = config_source(args, calling_module)
    if source.extra_dir and not os.path.isdir(source.extra_dir):
        return f"--config-dir {source.extra_dir} is not a directory"
    jobs: list[list[str]] = []
    job: list[str] = []
    try:
        with hydra_initialized(source):
            base = compose_in(source, without_sweep_axes(args.overrides), return_hydra_config=True)
            if not args.cfg and (args.multirun or base.hydra.mode == RunMode.MULTIRUN):
                jobs, swept = sweep_jobs(args, base)
                for job in jobs:
                    to_typed(sweep_job_config(source, base, job, swept))
                return None
            if without_sweep_axes(args.overrides) != args.overrides:
                compose_in(source, args.overrides)  # a sweep axis without -m: Hydra's refusal, in one line
            run_dir = _run_dir(base)
            to_typed(_without_hydra_node(base))  # the single job's config, composed once
            return writable_dir_problem("hydra.run.dir", run_dir) if run_dir else None
    except Exception as exc:  # noqa: BLE001 — Hydra's composition errors come in many classes, all user-facing
        message = str(exc) if isinstance(exc, ConfigError) else one_line_error(exc)
        return f"{message} (sweep job: {' '.join(job)})" if len(jobs) > 1 else message


def sweep_jobs(args: argparse.Namespace, base: DictConfig) -> tuple[list[list[str]], set[str]]:
    """The overrides of each job of a multirun (``-m`` or a sweep preset's ``hydra.mode: MULTIRUN``):
    the preset's axes and the command line's, expanded by Hydra's basic sweeper; and the keys whose
    values ``base`` (composed without them) lacks."""
    preset = [f"{key}={value}" for key, value in (base.hydra.sweeper.params or {}).items()]
    parsed = OverridesParser.create().parse_overrides(preset + args.overrides)
    swept = {o.get_key_element() for o in parsed[: len(preset)]} | {
        o.get_key_element() for o in parsed if o.is_sweep_override()
    }
    return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch], swept


def sweep_job_config(source: ConfigSource, base: DictConfig, job: list[str], swept: set[str]) -> DictConfig:
    """One sweep job's config. Composing each of 36 jobs takes ~10 s, so when the swept keys only set
    values they are applied to a copy of ``base`` by the function Hydra's own composition applies
    value overrides with; a swept config group, an added or deleted key, or a hydra key is composed."""
    overrides = [o for o in OverridesParser.create().parse_overrides(job) if o.get_key_element() in swept]
    choices = base.hydra.runtime.choices
    if any(
        o.type != OverrideType.CHANGE or o.is_hydra_override() or o.package is not None or o.key_or_group in choices
        for o in overrides
    ):
        return compose_in(source, job)
    cfg = copy.deepcopy(base)
    ConfigLoaderImpl._apply_overrides_to_config(overrides, cfg)
    return _without_hydra_node(cfg)


def _run_dir(cfg: DictConfig) -> str | None:
    """The run dir Hydra will create: a dir it cannot create (under a file, not writable) is one line
    in the precheck, not Hydra's traceback when it makes the dir."""
    try:
        return str(cfg.hydra.run.dir)
    except Exception:  # noqa: BLE001 — a dir only Hydra's runtime can resolve: leave it to Hydra
        return None


def _without_hydra_node(cfg: DictConfig) -> DictConfig:
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


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
    cannot compose them. Each job's values are validated on their own (``sweep_jobs``)."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException:  # a malformed override: let compose report it in its own words
        return overrides
    return [text for text, override in zip(overrides, parsed) if not override.is_sweep_override()]


def run_checked(cfg: DictConfig, body: Callable[[RunContext], object], *, program: str) -> None:
    """Type the config and run ``body``. A user error found after start-up (a preflight problem, a missing
    file or index) ends the job as a bad command line does: one line on stderr, ``program: config error:
    ...`` (exit 2), and the job's run dir is removed when it holds only the files every job starts with."""
    try:
        body(RunContext.from_hydra(cfg, to_typed(cfg)))
    except UserError as exc:
        kind = "config error" if isinstance(exc, ConfigError) else "error"
        print(f"{program}: {kind}: {exc}", file=sys.stderr)
        _remove_unused_run_dir()
        raise SystemExit(USER_ERROR_EXIT) from None


def _remove_unused_run_dir() -> None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():  # a test calling run_checked without a Hydra job
        return
    hydra = HydraConfig.get()
    startup = {hydra.output_subdir, f"{hydra.job.name}.log", RUN_LOCK_FILE, RunDir.RESOLVED_CONFIG}
    remove_unused_run_dir(Path(hydra.runtime.output_dir), {name for name in startup if name})
