"""The Ray jobs launcher: submit every sweep point as its own Ray job, wait for all, collect their logs."""

import asyncio
import logging
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import aiohttp
from hydra.core.utils import JobReturn, JobStatus as HydraJobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.searchr1_ray_jobs.client import REQUEST_ERRORS, JobStatus, RayJobsClient
from hydra_plugins.searchr1_ray_jobs.config import RayJobsLauncherConf

log = logging.getLogger(__name__)

JOB_LOG_FILE = "ray_job.log"
# Consecutive failed status polls tolerated before a job counts as lost (the head may restart its dashboard).
MAX_POLL_FAILURES = 5


@dataclass(frozen=True)
class JobSpec:
    """One sweep point, ready to submit."""

    idx: int
    overrides: list[str]
    job_dir: Path
    submission_id: str
    entrypoint: str
    config: DictConfig


def build_entrypoint(python: str, overrides: Sequence[str], job_dir: Path) -> str:
    """The shell command a Ray job runs: one plain searchr1 run, pinned to its sweep-point dir.

    ``hydra.mode=RUN`` stops a sweep preset in the overrides from starting a sweep inside the job.
    """
    if "'" in str(job_dir):
        raise ValueError(f"hydra.sweep.dir must not contain a single quote: {job_dir}")
    argv = [python, "-m", "searchr1", *overrides, "hydra.mode=RUN", f"hydra.run.dir='{job_dir}'"]
    return shlex.join(argv)


def submission_id(sweep_name: str, sweep_dir: Path, idx: int) -> str:
    """Unique per sweep and readable in the Ray dashboard."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{sweep_name}-{sweep_dir.name}-{idx}")


def job_runtime_env(runtime_env: dict[str, Any], pass_env: Sequence[str]) -> dict[str, Any]:
    """The configured runtime_env plus the named local environment variables that are set."""
    env = dict(runtime_env)
    passed = {name: os.environ[name] for name in pass_env if name in os.environ}
    if passed:
        env["env_vars"] = {**env.get("env_vars", {}), **passed}
    return env


async def run_jobs(
    specs: Sequence[JobSpec], settings: RayJobsLauncherConf, runtime_env: dict[str, Any]
) -> list[JobStatus]:
    """Submit all jobs (at most ``max_concurrent`` in flight), wait for each, save its log. Order is kept."""
    limit = settings.max_concurrent or len(specs) or 1
    gate = asyncio.Semaphore(limit)
    async with aiohttp.ClientSession() as session:
        client = RayJobsClient(settings.address, session, settings.request_timeout_s)

        async def one(spec: JobSpec) -> JobStatus:
            async with gate:
                return await _run_one(client, spec, settings, runtime_env)

        return list(await asyncio.gather(*(one(spec) for spec in specs)))


async def _run_one(
    client: RayJobsClient, spec: JobSpec, settings: RayJobsLauncherConf, runtime_env: dict[str, Any]
) -> JobStatus:
    try:
        return await _submit_and_wait(client, spec, settings, runtime_env)
    except asyncio.CancelledError:
        # Ctrl-C on the launcher: don't leave orphaned GPU jobs behind. A submission still in flight may
        # already have started its job on the server, so it is stopped too.
        await _stop_if_started(client, spec.submission_id)
        raise


async def _submit_and_wait(
    client: RayJobsClient, spec: JobSpec, settings: RayJobsLauncherConf, runtime_env: dict[str, Any]
) -> JobStatus:
    try:
        await client.submit(
            submission_id=spec.submission_id,
            entrypoint=spec.entrypoint,
            runtime_env=runtime_env,
            metadata={"searchr1_job_dir": str(spec.job_dir), "searchr1_overrides": " ".join(spec.overrides)},
            num_cpus=settings.entrypoint_num_cpus,
            num_gpus=settings.entrypoint_num_gpus,
        )
    except REQUEST_ERRORS as exc:
        # One point that cannot be submitted fails alone; the others still run.
        log.error("#%d could not be submitted: %s", spec.idx, exc)
        return JobStatus(status="FAILED", message=f"submission failed: {exc}")
    log.info("#%d submitted as Ray job %s", spec.idx, spec.submission_id)
    status = await _wait(client, spec.submission_id, settings.poll_s)
    await _save_log(client, spec)
    log.info("#%d Ray job %s %s", spec.idx, spec.submission_id, status.status)
    return status


async def _stop_if_started(client: RayJobsClient, submission_id: str) -> None:
    try:
        await client.stop(submission_id)
    except REQUEST_ERRORS as exc:
        # Usually "no such job": the cancelled submission never reached the server.
        log.warning("stopping Ray job %s: %s", submission_id, exc)


async def _save_log(client: RayJobsClient, spec: JobSpec) -> None:
    try:
        text = await client.logs(spec.submission_id)
    except REQUEST_ERRORS as exc:
        # A missing log must not hide the job's outcome; say why it is missing instead.
        text = f"[searchr1] could not fetch the log of Ray job {spec.submission_id}: {exc}\n"
    spec.job_dir.mkdir(parents=True, exist_ok=True)
    (spec.job_dir / JOB_LOG_FILE).write_text(text)


async def _wait(client: RayJobsClient, submission_id: str, poll_s: float) -> JobStatus:
    failures = 0
    while True:
        try:
            status = await client.status(submission_id)
            failures = 0
        except REQUEST_ERRORS as exc:
            failures += 1
            if failures >= MAX_POLL_FAILURES:
                return JobStatus(status="FAILED", message=f"lost contact with the job server: {exc}")
            log.warning("status of %s: %s (retrying)", submission_id, exc)
            status = None
        if status is not None and status.done:
            return status
        await asyncio.sleep(poll_s)


class RayJobsLauncher(Launcher):
    def __init__(self, **settings: Any) -> None:
        self.settings = RayJobsLauncherConf(**settings)
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # task_function is not used: each job runs `python -m searchr1` on the cluster, not in this process.
        self.config = config
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        specs = [self._spec(initial_job_idx + i, list(o), sweep_dir) for i, o in enumerate(job_overrides)]
        log.info("Submitting %d jobs to the Ray cluster at %s", len(specs), self.settings.address)
        for spec in specs:
            log.info("\t#%d : %s", spec.idx, " ".join(filter_overrides(spec.overrides)))
        runtime_env = job_runtime_env(_plain(self.settings.runtime_env), list(self.settings.pass_env))
        statuses = asyncio.run(run_jobs(specs, self.settings, runtime_env))
        return [_job_return(spec, status) for spec, status in zip(specs, statuses)]

    def _spec(self, idx: int, overrides: list[str], sweep_dir: Path) -> JobSpec:
        assert self.config is not None and self.hydra_context is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        job_dir = sweep_dir / str(config.hydra.sweep.subdir)
        sweep_name = OmegaConf.select(config, "sweep_name") or "sweep"
        return JobSpec(
            idx=idx,
            overrides=overrides,
            job_dir=job_dir,
            submission_id=submission_id(sweep_name, sweep_dir, idx),
            entrypoint=build_entrypoint(self.settings.python, overrides, job_dir),
            config=config,
        )


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _job_return(spec: JobSpec, status: JobStatus) -> JobReturn:
    ret = JobReturn(
        overrides=spec.overrides,
        cfg=spec.config,
        hydra_cfg=spec.config,
        working_dir=str(spec.job_dir),
        task_name="searchr1",
    )
    if status.status == "SUCCEEDED":
        ret.status, ret.return_value = HydraJobStatus.COMPLETED, spec.submission_id
    else:
        ret.status = HydraJobStatus.FAILED
        ret.return_value = RuntimeError(
            f"Ray job {spec.submission_id} {status.status}: {status.message} (log: {spec.job_dir / JOB_LOG_FILE})"
        )
    return ret
