"""What every searchr1 Hydra program shares: register the schemas, reject a bad command line in one
line before Hydra starts anything, and run a body on the typed config.

A single run's config is composed and typed once, by the precheck, and that is the config the run gets:
the job is started through Hydra's launcher API (``hydra.core.utils.run_job``: run dir, logging,
``.hydra/``, ``hydra.job.env_set``) instead of ``@hydra.main``, which would compose it again. Help,
``--cfg``, ``--info``, shell completion and multiruns are Hydra's own main's."""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Hydra's command-line parser and its --config-path rule have no public home; tests/test_entry.py pins both
# (and that nothing else here is private) against the Hydra versions pyproject.toml allows.
from hydra._internal.utils import compute_search_path_dir, get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.core.utils import configure_log, run_job
from hydra.errors import OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from searchr1.config import ConfigError, SearchR1Config, register_configs, to_typed
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
    job_name = calling_module.rpartition(".")[2]  # as Hydra's main names a job its config does not name
    return ConfigSource(primary=primary, name=args.config_name or CONFIG_NAME, extra_dir=extra_dir, job_name=job_name)


@dataclass(frozen=True)
class Job:
    """A single run, composed and typed by the precheck: the config it runs with."""

    source: ConfigSource
    cfg: DictConfig
    """The composed config with its ``hydra`` node."""
    typed: SearchR1Config


@dataclass(frozen=True)
class Checked:
    """The precheck's answer: a one-line error; or the single run's ``job``; or neither, for what Hydra's
    own main does (help, ``--cfg``, ``--info``, a multirun, a run with ``hydra.callbacks``)."""

    error: str | None = None
    job: Job | None = None


def start(program: str, hydra_main: Callable[[], None], body: Callable[[RunContext], object]) -> None:
    """Register the schemas and reject a bad command line in one line; then run ``body`` on the precheck's
    config, or hand over to ``hydra_main`` (which calls ``run_checked`` with ``body`` on what it composes)."""
    register_configs()
    checked = precheck(sys.argv[1:], calling_module=hydra_main.__module__)
    if checked.error:
        print(f"{program}: config error: {checked.error}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT)
    if checked.job is None:
        hydra_main()
    else:
        run_composed(checked.job, body, program=program)


def precheck(argv: list[str], *, calling_module: str = "searchr1.cli") -> Checked:
    """Compose and validate every job the command line would start (each sweep point of a multirun)
    before Hydra starts anything, so a typo costs one line, not a run."""
    args = _hydra_args(argv)
    if args is None or any(getattr(args, flag) for flag in _NOTHING_TO_RUN):
        return Checked()  # Hydra reports a malformed command line itself; help and the like run nothing
    source = config_source(args, calling_module)
    if source.extra_dir and not os.path.isdir(source.extra_dir):
        return Checked(error=f"--config-dir {source.extra_dir} is not a directory")
    jobs: list[list[str]] = []
    job: list[str] = []
    try:
        with hydra_initialized(source):
            base = compose_in(source, without_sweep_axes(args.overrides), return_hydra_config=True)
            if not args.cfg and (args.multirun or base.hydra.mode == RunMode.MULTIRUN):
                jobs, swept = sweep_jobs(args, base)
                for job in jobs:
                    to_typed(sweep_job_config(source, base, job, swept))
                return Checked()
            if without_sweep_axes(args.overrides) != args.overrides:
                compose_in(source, args.overrides)  # a sweep axis without -m: Hydra's refusal, in one line
            run_dir = _run_dir(base)
            typed = to_typed(_without_hydra_node(copy.deepcopy(base)))
    except Exception as exc:  # noqa: BLE001 — Hydra's composition errors come in many classes, all user-facing
        message = str(exc) if isinstance(exc, ConfigError) else one_line_error(exc)
        return Checked(error=f"{message} (sweep job: {' '.join(job)})" if len(jobs) > 1 else message)
    problem = writable_dir_problem("hydra.run.dir", run_dir) if run_dir else None
    if problem or args.cfg or base.hydra.callbacks:
        return Checked(error=problem)  # --cfg prints what Hydra composes; callbacks are Hydra's to call
    return Checked(job=Job(source, base, typed))


# run_job calls on_job_start and on_job_end, which Hydra's no-op Callback has; HydraContext's annotation names
# Hydra's internal aggregate of the configured callbacks (a run with hydra.callbacks goes to Hydra's main).
_NO_CALLBACKS: Any = Callback()


def run_composed(job: Job, body: Callable[[RunContext], object], *, program: str) -> None:
    """Run ``body`` on the precheck's config as Hydra's own main would run the job (Hydra's logging, then
    ``run_job``: run dir, job logging, ``.hydra/``, ``hydra.job.env_set``); a job's exception is raised."""
    cfg = job.cfg
    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    with read_write(cfg.hydra):
        if cfg.hydra.mode is None:  # recorded in .hydra/hydra.yaml as Hydra's main records it
            cfg.hydra.mode = RunMode.RUN
            cfg.hydra.overrides.hydra.append("hydra.mode=RUN")
    with hydra_initialized(job.source):
        done = run_job(
            task_function=lambda task_cfg: run_checked(task_cfg, body, program=program, typed=job.typed),
            config=cfg,
            job_dir_key="hydra.run.dir",
            job_subdir_key=None,
            hydra_context=HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=_NO_CALLBACKS),
        )
    done.return_value  # noqa: B018 — reading it raises the job's exception, as Hydra's main does


def sweep_jobs(args: argparse.Namespace, base: DictConfig) -> tuple[list[list[str]], set[str]]:
    """The overrides of each job of a multirun (``-m`` or a sweep preset's ``hydra.mode: MULTIRUN``):
    the preset's axes and the command line's, expanded as Hydra's basic sweeper does; and the keys whose
    values ``base`` (composed without them) lacks."""
    preset = [f"{key}={value}" for key, value in (base.hydra.sweeper.params or {}).items()]
    parsed = OverridesParser.create().parse_overrides(preset + args.overrides)
    swept = {o.get_key_element() for o in parsed[: len(preset)]} | {
        o.get_key_element() for o in parsed if o.is_sweep_override()
    }
    return [list(point) for point in itertools.product(*_axes(parsed).values())], swept


def _axes(overrides: list[Override]) -> dict[str, list[str]]:
    """Each key's values as ``key=value`` overrides, in the order Hydra's basic sweeper crosses them (a
    key given twice keeps its first place and its last values)."""
    axes: dict[str, list[str]] = {}
    for o in overrides:
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        axes[key] = [f"{key}={value}" for value in values]
    return axes


def sweep_job_config(source: ConfigSource, base: DictConfig, job: list[str], swept: set[str]) -> DictConfig:
    """One sweep job's config. Composing each of 36 jobs takes ~10 s, so when the swept keys only set
    values they are set on a copy of ``base`` as Hydra's composition sets a value override (a merge into
    the typed node, which checks key and type); a swept config group, an added or deleted key, or a hydra
    key is composed."""
    overrides = [o for o in OverridesParser.create().parse_overrides(job) if o.get_key_element() in swept]
    choices = base.hydra.runtime.choices
    if any(
        o.type != OverrideType.CHANGE or o.is_hydra_override() or o.package is not None or o.key_or_group in choices
        for o in overrides
    ):
        return compose_in(source, job)
    cfg = copy.deepcopy(base)
    for o in overrides:
        OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
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


def run_checked(
    cfg: DictConfig, body: Callable[[RunContext], object], *, program: str, typed: SearchR1Config | None = None
) -> None:
    """Run ``body`` on ``typed``, the config typed by the precheck (None: type ``cfg``, a multirun job Hydra
    composed). A user error found after start-up (a preflight problem, a missing file or index) ends the
    job as a bad command line does: one line on stderr, ``program: config error: ...`` (exit 2), and the
    job's run dir is removed when it holds only the files every job starts with."""
    try:
        body(RunContext.from_hydra(cfg, typed if typed is not None else to_typed(cfg)))
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
