"""Sweep presets expand to the intended grids and every point composes; launcher configs compose;
the Ray jobs launcher submits, waits, collects logs and fails loudly, against a fake Ray job server."""

from __future__ import annotations

import asyncio
import itertools
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hydra_plugins.searchr1_ray_jobs.config import RayJobsLauncherConf
from hydra_plugins.searchr1_ray_jobs.launcher import (
    JOB_LOG_FILE,
    JobSpec,
    RayJobsLauncher,
    build_entrypoint,
    job_runtime_env,
    run_jobs,
)
from searchr1.entry import CONFIG_MODULE, CONFIG_NAME, VERSION_BASE
from searchr1.config import register_configs, to_typed
from tests.support.compose import REPO
from tests.support.ray_jobs_server import FakeJob, FakeRayJobServer

SWEEPS = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


@pytest.fixture(scope="module", autouse=True)
def _hydra():
    """One Hydra initialisation for the module: composing is what we test, initialising is slow."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base=VERSION_BASE):
        yield
    GlobalHydra.instance().clear()


def compose_config(overrides: list[str], *, hydra_node: bool = False):
    return compose(config_name=CONFIG_NAME, overrides=overrides, return_hydra_config=hydra_node)


def sweep_axes(name: str) -> list[list[str]]:
    params = compose_config([f"+sweep={name}"], hydra_node=True).hydra.sweeper.params
    return [[f"{key}={value}" for value in str(values).split(",")] for key, values in params.items()]


def sweep_points(name: str) -> list[list[str]]:
    """The cartesian product the basic sweeper runs, as override lists."""
    return [list(point) for point in itertools.product(*sweep_axes(name))]


def axis_value_points(name: str) -> list[list[str]]:
    """Every value of every axis at least once (axes compose independently; the full grid is too slow)."""
    axes = sweep_axes(name)
    firsts = [axis[0] for axis in axes]
    points = {tuple(firsts[:i] + [value] + firsts[i + 1 :]) for i, axis in enumerate(axes) for value in axis}
    return [list(point) for point in sorted(points)]


def typed(overrides: list[str]):
    cfg = compose_config(overrides)
    return to_typed(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("name", SWEEPS)
def test_every_point_of_every_sweep_composes_and_names_its_group(name):
    assert len(sweep_points(name)) >= 2
    for point in axis_value_points(name):
        cfg = typed([f"+sweep={name}", *point])
        assert cfg.sweep_name == name
        assert cfg.logger.group == name, "the W&B group must be the sweep name"
        for override in point:
            key, value = override.split("=")
            assert str(OmegaConf.select(OmegaConf.structured(cfg), key)) == value


def test_turns_topk_is_the_papers_grid():
    points = {tuple(p) for p in sweep_points("turns_topk")}
    expected = {(f"rollout.max_turns={t}", f"search.topk={k}") for t in (1, 2, 4, 8) for k in (1, 3, 5)}
    assert points == expected


def test_seeds_sweep_varies_only_the_seed():
    assert sweep_points("seeds") == [["seed=0"], ["seed=1"], ["seed=2"]]


def test_smoke_sweep_is_tiny_and_2x2():
    assert len(sweep_points("smoke_2x2")) == 4
    cfg = typed(["+sweep=smoke_2x2"])
    assert cfg.trainer.name == "local" and cfg.trainer.steps <= 2 and cfg.trainer.prompts_per_step == 1


def test_run_name_starts_with_the_sweep_and_carries_the_point(tmp_path):
    from searchr1.run import RunContext

    cfg = compose_config(["+sweep=turns_topk", "rollout.max_turns=4", "search.topk=5", "seed=1"])
    point = {"+sweep": "turns_topk", "rollout.max_turns": "4", "search.topk": "5", "seed": "1"}
    name = RunContext.build(cfg, to_typed(cfg), tmp_path, sweep_point=point).run_name
    assert name.startswith("turns_topk-") and "-t4-k5" in name and name.endswith("seed=1")
    assert "sweep=" not in name


def test_miles_runs_carry_the_sweep_name_into_their_wandb_config(tmp_path):
    """Miles makes the run name its W&B group, so the sweep travels in the config Miles logs (args)."""
    from searchr1.trainers.miles.command import wandb_args
    from searchr1.trainers.miles.custom_config import build_custom_config

    cfg = to_typed(compose_config(["+sweep=turns_topk", "trainer=miles", "rollout.max_turns=4"]))
    custom = build_custom_config(cfg, run_dir=tmp_path, run_name="turns_topk-miles-t4-k3")
    assert custom["searchr1"]["sweep_name"] == "turns_topk"
    assert custom["searchr1"]["rollout"]["max_turns"] == 4
    args = wandb_args(cfg, run_dir=tmp_path, run_name="turns_topk-miles-t4-k3")
    assert "--disable-wandb-random-suffix" in args
    assert args[args.index("--wandb-group") + 1] == "turns_topk-miles-t4-k3"


def test_sweep_dir_is_named_after_the_sweep_and_points_get_their_own_subdir():
    hydra = compose_config(["+sweep=turns_topk"], hydra_node=True).hydra
    assert "/turns_topk/" in hydra.sweep.dir
    assert OmegaConf.to_container(hydra.sweep)["subdir"] == "${hydra.job.override_dirname}"


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    launcher = compose_config(
        ["+sweep=turns_topk", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"], hydra_node=True
    ).hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 8, 1)


def test_ray_jobs_launcher_config_composes_and_instantiates(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    cfg = compose_config(
        ["+sweep=turns_topk", "trainer=miles", "hydra/launcher=ray_jobs", "hydra.launcher.max_concurrent=2"],
        hydra_node=True,
    )
    launcher = instantiate(cfg.hydra.launcher)
    # Hydra's plugin scan re-executes plugin modules, so compare the class by name, not identity.
    assert type(launcher).__qualname__ == RayJobsLauncher.__qualname__
    assert launcher.settings.address == "http://head:8265"
    assert launcher.settings.max_concurrent == 2


def test_entrypoint_pins_the_run_dir_and_disables_the_inner_sweep():
    job_dir = Path("/shared/multirun/turns_topk/2026-11-25_10-00-00/rollout.max_turns=2,search.topk=3")
    argv = shlex.split(build_entrypoint("python", ["+sweep=turns_topk", "rollout.max_turns=2"], job_dir))
    assert argv[:3] == ["python", "-m", "searchr1"]
    assert "hydra.mode=RUN" in argv
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(argv[3:])}
    assert parsed["hydra.run.dir"] == str(job_dir), "the '=' and ',' of the subdir must survive Hydra's parser"
    assert parsed["rollout.max_turns"] == 2


def test_runtime_env_passes_only_named_variables_that_are_set(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "k")
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    env = job_runtime_env({"env_vars": {"A": "1"}, "working_dir": "."}, ["WANDB_API_KEY", "SERPER_API_KEY"])
    assert env == {"env_vars": {"A": "1", "WANDB_API_KEY": "k"}, "working_dir": "."}
    assert job_runtime_env({}, []) == {}


def _specs(tmp_path: Path, n: int) -> list[JobSpec]:
    return [
        JobSpec(
            idx=i,
            overrides=[f"seed={i}"],
            job_dir=tmp_path / f"seed={i}",
            submission_id=f"s-{i}",
            entrypoint=f"python -m searchr1 seed={i}",
            config=OmegaConf.create(),
        )
        for i in range(n)
    ]


def test_run_jobs_waits_for_all_keeps_order_and_saves_logs(tmp_path):
    with FakeRayJobServer(polls_to_finish=3, fail_when="seed=1") as server:
        settings = RayJobsLauncherConf(address=server.url, poll_s=0.01, max_concurrent=2)
        statuses = asyncio.run(run_jobs(_specs(tmp_path, 3), settings, {"env_vars": {"X": "y"}}))
    assert [s.status for s in statuses] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert "exit code 1" in statuses[1].message
    assert server.max_active == 2, "max_concurrent bounds the jobs in flight"
    assert all(job.polls >= 3 for job in server.jobs.values()), "every job was waited for"
    body = server.jobs["s-0"].body
    assert body["runtime_env"] == {"env_vars": {"X": "y"}}
    assert body["metadata"]["searchr1_job_dir"] == str(tmp_path / "seed=0")
    assert "entrypoint_num_gpus" not in body
    assert (tmp_path / "seed=2" / JOB_LOG_FILE).read_text() == "ran: python -m searchr1 seed=2\n"


def test_a_point_that_cannot_be_submitted_fails_alone(tmp_path):
    with FakeRayJobServer() as server:
        server.jobs["s-0"] = FakeJob(body={"entrypoint": "an older job"}, status="SUCCEEDED")  # id taken
        settings = RayJobsLauncherConf(address=server.url, poll_s=0.01)
        statuses = asyncio.run(run_jobs(_specs(tmp_path, 2), settings, {}))
    assert statuses[0].status == "FAILED" and "already exists" in statuses[0].message
    assert statuses[1].status == "SUCCEEDED"


def test_cancelling_the_launcher_stops_submitted_jobs(tmp_path):
    async def cancel_soon(server: FakeRayJobServer) -> None:
        settings = RayJobsLauncherConf(address=server.url, poll_s=0.01)
        task = asyncio.create_task(run_jobs(_specs(tmp_path, 2), settings, {}))
        while len(server.jobs) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with FakeRayJobServer(polls_to_finish=10**6) as server:
        asyncio.run(cancel_soon(server))
    assert all(job.stopped for job in server.jobs.values())


def test_cancelling_while_a_submission_is_unanswered_stops_its_job(tmp_path):
    async def cancel_before_the_answer(server: FakeRayJobServer) -> None:
        settings = RayJobsLauncherConf(address=server.url, poll_s=0.01)
        task = asyncio.create_task(run_jobs(_specs(tmp_path, 1), settings, {}))
        while not server.jobs:  # recorded on the server, its answer still on the way
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with FakeRayJobServer(polls_to_finish=10**6, submit_answer_delay_s=2.0) as server:
        asyncio.run(cancel_before_the_answer(server))
    assert server.jobs["s-0"].stopped, "a job started by a cancelled submission is left running"


def test_lost_job_server_fails_the_job_instead_of_hanging(tmp_path):
    with FakeRayJobServer() as server:
        settings = RayJobsLauncherConf(address=server.url, poll_s=0.01)
        spec = _specs(tmp_path, 1)[0]
        spec = JobSpec(**{**spec.__dict__, "submission_id": "s-0"})

        async def submit_then_forget() -> list:
            task = asyncio.create_task(run_jobs([spec], settings, {}))
            while not server.jobs:
                await asyncio.sleep(0.005)
            server.jobs.clear()  # the head restarted and forgot the job: status now answers 404
            return await task

        statuses = asyncio.run(submit_then_forget())
    assert statuses[0].status == "FAILED" and "lost contact" in statuses[0].message


def _multirun(tmp_path: Path, server: FakeRayJobServer, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "searchr1",
        "+sweep=smoke_2x2",
        "hydra/launcher=ray_jobs",
        *extra,
        f"hydra.launcher.address={server.url}",
        "hydra.launcher.poll_s=0.02",
        f"hydra.sweep.dir={tmp_path}",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.slow
def test_multirun_through_the_ray_jobs_launcher(tmp_path):
    """The sweep file's 2x2 grid times a seed axis added on the command line: 8 Ray jobs."""
    with FakeRayJobServer() as server:
        proc = _multirun(tmp_path, server, "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    entrypoints = [shlex.split(job.body["entrypoint"]) for job in server.jobs.values()]
    assert len(entrypoints) == 8
    run_dirs = set()
    for argv in entrypoints:
        assert "+sweep=smoke_2x2" in argv and "hydra.mode=RUN" in argv
        run_dir = Path(next(a for a in argv if a.startswith("hydra.run.dir=")).split("=", 1)[1].strip("'"))
        assert (
            run_dir.parent == tmp_path
            and run_dir.name.startswith("rollout.max_turns=")
            and "search.topk=" in run_dir.name
        )
        assert f"seed={next(a for a in argv if a.startswith('seed=')).split('=')[1]}" in run_dir.name
        assert (run_dir / JOB_LOG_FILE).is_file()
        run_dirs.add(run_dir)
    assert len(run_dirs) == 8
    assert all(sid.startswith("smoke_2x2-") for sid in server.jobs)


@pytest.mark.slow
def test_a_failed_ray_job_fails_the_multirun(tmp_path):
    with FakeRayJobServer(fail_when="rollout.max_turns=2") as server:
        proc = _multirun(tmp_path, server)
    assert proc.returncode != 0
    assert "FAILED" in proc.stderr and JOB_LOG_FILE in proc.stderr
    assert len(server.jobs) == 4, "the other points still ran"
