"""Launching Miles: dry run, ray job submit (fake ray CLI), secrets, exit codes, preflight refusal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from searchr1.config import to_typed
from searchr1.run import RunContext, save_resolved_config
from searchr1.trainers.miles import launch as launch_module
from searchr1.trainers.miles.stop_file import HEALTH_STOP_FILE
from searchr1.paths import RunDir
from searchr1.trainers.miles.launch import RUNTIME_ENV_FILE, launch
from searchr1.trainers.miles.preflight import PreflightError
from tests.support.compose import compose_config
from tests.support.miles_fakes import install_fake_ray, miles_install
from tests.support.ray_jobs_server import FakeRayJobServer

SERPER = "serper-secret-value-42"
WANDB = "wandb-secret-value-42"


@pytest.fixture
def setup(tmp_path, monkeypatch):
    record = install_fake_ray(tmp_path / "bin", sys.executable)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_RAY_RECORD", str(record))
    monkeypatch.setenv("SERPER_API_KEY", SERPER)
    monkeypatch.setenv("WANDB_API_KEY", WANDB)
    return tmp_path, record, miles_install(tmp_path / "install")


def context(tmp_path, overrides) -> RunContext:
    cfg = compose_config(overrides)
    return RunContext.build(cfg, to_typed(cfg), tmp_path / "run")


def calls(record):
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def run_dir_text(ctx) -> str:
    return "".join(p.read_text(errors="replace") for p in ctx.run_dir.rglob("*") if p.is_file())


def test_dry_run_writes_and_prints_the_command_without_launching(setup, capsys):
    tmp, record, overrides = setup
    ctx = context(tmp, [*overrides, "trainer.dry_run=true", "logger.mode=online"])
    launch(ctx)
    printed = capsys.readouterr().out
    assert "ray job submit" in printed and "train.py" in printed and "--custom-config-path" in printed
    assert calls(record) == []  # nothing launched
    script = (ctx.run_dir / RunDir.MILES_COMMAND).read_text()
    assert "--use-tis" in script and "--wandb-key" not in script
    custom = yaml.safe_load((ctx.run_dir / "miles_custom_config.yaml").read_text())
    assert custom["use_tis"] is True and custom["searchr1"]["backend"]["name"] == "google"
    assert SERPER not in printed + run_dir_text(ctx) and WANDB not in printed + run_dir_text(ctx)


def test_a_short_secret_corrupts_nothing_and_the_saved_command_replays(setup, monkeypatch, capsys, caplog):
    tmp, record, overrides = setup
    monkeypatch.setenv("SERPER_API_KEY", "x")  # too short to be a key: not redacted, warned about
    ctx = context(tmp, [*overrides, "trainer.dry_run=true", f"trainer.extra_args=[--wandb-key,{WANDB}]"])
    launch(ctx)
    printed = capsys.readouterr().out
    script = (ctx.run_dir / RunDir.MILES_COMMAND).read_text()
    resolved = save_resolved_config(ctx).read_text()
    assert "SERPER_API_KEY is 1 characters long" in caplog.text
    assert "a secret value is in the Miles command" in caplog.text and WANDB not in caplog.text
    for text in (printed, script):
        assert "***" not in text and "--rollout-max-response-len 512" in text and WANDB not in text
    assert yaml.safe_load(resolved)["rollout"]["max_turn_tokens"] == 512 and WANDB not in resolved
    assert '--wandb-key "${WANDB_API_KEY}"' in script and '--wandb-key "${WANDB_API_KEY}"' in printed
    # replay the saved script by hand: the job gets exactly the argv a launch submits, the key included
    subprocess.run(["bash", str(ctx.run_dir / RunDir.MILES_COMMAND)], check=True, capture_output=True)
    (replayed,) = calls(record)
    argv = replayed["argv"]
    assert argv[argv.index("--wandb-key") + 1] == WANDB
    assert argv[argv.index("--rollout-max-response-len") + 1] == "512"
    assert replayed["runtime_env"] == (ctx.run_dir / RUNTIME_ENV_FILE).read_text()


def test_dry_run_reports_preflight_problems_without_failing(setup, caplog):
    tmp, _, overrides = setup
    launch(context(tmp, [*overrides, "trainer.dry_run=true", "trainer.miles_root=/nowhere"]))
    assert "trainer.miles_root=/nowhere" in caplog.text


def test_unknown_extra_flags_are_warned_about_and_kept(setup, caplog):
    tmp, _, overrides = setup
    ctx = context(tmp, [*overrides, "trainer.dry_run=true", "trainer.extra_args=[--brand-new-flag,'1']"])
    launch(ctx)
    assert "--brand-new-flag is not a flag of Miles" in caplog.text
    assert (ctx.run_dir / RunDir.MILES_COMMAND).read_text().rstrip().endswith("--brand-new-flag 1")


@pytest.fixture
def cluster():
    """A one-node Ray cluster's job server: runs each job's entrypoint here (the remote preflight's)."""
    with FakeRayJobServer(run_entrypoints=True) as jobs:
        yield jobs


def test_submit_to_a_cluster_streams_logs_and_passes_secrets_only_by_env_file(setup, cluster, capsys):
    tmp, record, overrides = setup
    ctx = context(tmp, [*overrides, f"trainer.ray_address={cluster.url}"])
    launch(ctx)
    # the preflight ran on the cluster first, as a Ray job, with the job's env and no secret
    (check,) = cluster.jobs.values()
    assert "searchr1.trainers.miles.cluster_check" in check.body["entrypoint"] and check.status == "SUCCEEDED"
    assert SERPER not in str(check.body) and WANDB not in str(check.body)
    assert not list(ctx.run_dir.glob(".searchr1-visible-*"))  # the shared-storage marker is cleaned up
    (submit,) = calls(record)
    argv = submit["argv"]
    assert argv[:5] == ["job", "submit", "--address", cluster.url, "--runtime-env"]
    assert argv[argv.index("--") + 1 :][:2] == ["python3", str(tmp / "install" / "miles" / "train.py")]
    assert SERPER not in " ".join(argv) and WANDB not in " ".join(argv)
    env_vars = yaml.safe_load(submit["runtime_env"])["env_vars"]
    assert env_vars["SERPER_API_KEY"] == SERPER  # secret reaches the job through the env file
    paths = env_vars["PYTHONPATH"].split(":")
    assert paths[:2] == [str(tmp / "install" / "Megatron-LM"), str(tmp / "install" / "miles")]
    assert any((p and (Path(p) / "searchr1").is_dir()) for p in paths[2:])
    assert env_vars["CUDA_DEVICE_MAX_CONNECTIONS"] == "1"
    # the submitted env file is gone; the run dir keeps a copy without secrets
    assert not Path(argv[argv.index("--runtime-env") + 1]).exists()
    assert "SERPER_API_KEY" not in (ctx.run_dir / RUNTIME_ENV_FILE).read_text()
    assert "fake ray: job submit" in (ctx.run_dir / RunDir.MILES_LOG).read_text()
    assert "fake ray: job submit" in capsys.readouterr().out
    assert SERPER not in run_dir_text(ctx)


def test_job_failure_exit_code_propagates(setup, monkeypatch):
    tmp, _, overrides = setup
    monkeypatch.setenv("FAKE_RAY_EXIT", "3")
    with pytest.raises(SystemExit) as exit_info:
        # no remote preflight: nothing but `ray job submit` contacts the (unreachable) address
        launch(context(tmp, [*overrides, "trainer.ray_address=http://10.1.2.3:8265", "trainer.remote_preflight=false"]))
    assert exit_info.value.code == 3


def test_a_stale_health_stop_from_an_earlier_launch_is_removed_before_the_job_starts(setup, caplog):
    tmp, record, overrides = setup
    ctx = context(tmp, [*overrides, "trainer.ray_address=http://10.1.2.3:8265", "trainer.remote_preflight=false"])
    stop = ctx.run_dir / HEALTH_STOP_FILE
    stop.parent.mkdir(parents=True, exist_ok=True)
    stop.write_text("health: rule think_repetition fired at step 7\n")
    launch(ctx)
    assert not stop.exists()  # the new job's first rollout would otherwise end it
    assert [c["argv"][:2] for c in calls(record)] == [["job", "submit"]]
    assert "removed" in caplog.text and "rule think_repetition fired at step 7" in caplog.text


def test_a_dry_run_leaves_a_health_stop_in_place(setup):
    tmp, _, overrides = setup
    ctx = context(tmp, [*overrides, "trainer.dry_run=true"])
    stop = ctx.run_dir / HEALTH_STOP_FILE
    stop.parent.mkdir(parents=True, exist_ok=True)
    stop.write_text("health: rule think_repetition fired at step 7\n")
    launch(ctx)
    assert stop.exists()  # a dry run starts nothing, so it clears nothing


def test_cluster_preflight_finds_what_the_nodes_lack_before_submitting(setup, cluster):
    tmp, record, overrides = setup
    (tmp / "install" / "miles" / "train.py").unlink()
    (tmp / "install" / "torch_dist" / "latest_checkpointed_iteration.txt").unlink()
    with pytest.raises(PreflightError) as err:
        launch(context(tmp, [*overrides, f"trainer.ray_address={cluster.url}"]))
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 2 and all(line.startswith("  - node 127.0.0.1: ") for line in lines)
    assert "trainer.miles_root=" in lines[0] and "model.ref_load=" in lines[1]
    assert calls(record) == []  # training was never submitted


def test_a_run_dir_the_nodes_cannot_see_is_one_line(setup, monkeypatch):
    tmp, record, overrides = setup

    def hide_launcher_files(body):  # this "node" does not mount the launcher's run dir
        for marker in (tmp / "run").glob(".searchr1-visible-*"):
            marker.unlink()

    with FakeRayJobServer(run_entrypoints=True, before_run=hide_launcher_files) as cluster:
        with pytest.raises(
            PreflightError, match="is not on storage this node sees; set hydra.run.dir or trainer.shared_dir"
        ):
            launch(context(tmp, [*overrides, f"trainer.ray_address={cluster.url}"]))
    assert calls(record) == []


def test_a_cluster_that_cannot_run_searchr1_is_one_line(setup):
    tmp, record, overrides = setup
    with FakeRayJobServer(fail_when="cluster_check") as cluster:  # the job fails without printing a result
        with pytest.raises(
            PreflightError, match="ended FAILED without a result.*is searchr1 importable on the cluster"
        ):
            launch(context(tmp, [*overrides, f"trainer.ray_address={cluster.url}"]))
    assert calls(record) == []


def test_shared_dir_holds_the_jobs_files(setup, cluster):
    tmp, record, overrides = setup
    shared = tmp / "shared"
    ctx = context(tmp, [*overrides, f"trainer.ray_address={cluster.url}", f"trainer.shared_dir={shared}"])
    launch(ctx)
    job_files = shared / ctx.run_name / ctx.run_dir.name
    custom = yaml.safe_load((job_files / "miles_custom_config.yaml").read_text())
    assert custom["searchr1"]["run_dir"] == str(job_files)  # metrics.jsonl is written there by the hooks
    (submit,) = calls(record)
    argv = submit["argv"]
    assert argv[argv.index("--custom-config-path") + 1] == str(job_files / "miles_custom_config.yaml")
    assert argv[argv.index("--wandb-dir") + 1] == str(job_files)
    assert (ctx.run_dir / RunDir.MILES_COMMAND).is_file() and not (ctx.run_dir / "miles_custom_config.yaml").exists()


def test_a_dry_run_with_a_shared_dir_writes_nothing_outside_the_run_dir(setup, capsys):
    """The command names the shared dir, as a launch submits it; the files it names stay in the run dir
    (issue 27, item 14)."""
    tmp, record, overrides = setup
    shared = tmp / "shared"
    ctx = context(tmp, [*overrides, "trainer.dry_run=true", f"trainer.shared_dir={shared}", "trainer.eval_interval=5"])
    write_test_split(tmp / "install" / "data" / "test.parquet", ["nq"])
    launch(ctx)
    assert not shared.exists() and calls(record) == []
    job_files = shared / ctx.run_name / ctx.run_dir.name
    script = (ctx.run_dir / RunDir.MILES_COMMAND).read_text()
    assert f"--custom-config-path {job_files / 'miles_custom_config.yaml'}" in script
    assert f"--eval-prompt-data nq {job_files / 'eval_data' / 'nq.parquet'}" in script
    custom = yaml.safe_load((ctx.run_dir / "miles_custom_config.yaml").read_text())
    assert custom["searchr1"]["run_dir"] == str(job_files)  # what the job will read, not where it was written
    assert (ctx.run_dir / "eval_data" / "nq.parquet").is_file()


def test_a_shared_dir_that_cannot_be_created_is_one_line(setup, monkeypatch, caplog):
    tmp, record, overrides = setup
    (tmp / "a_file").write_text("")
    ctx = context(tmp, [*overrides, "trainer.dry_run=true", f"trainer.shared_dir={tmp / 'a_file' / 'sub'}"])
    launch(ctx)  # a dry run warns and still writes its command
    assert "trainer.shared_dir=" in caplog.text and (ctx.run_dir / RunDir.MILES_COMMAND).is_file()
    # a refusal the preflight cannot foresee (root passes its access check, /proc still refuses)
    monkeypatch.setattr("searchr1.trainers.miles.preflight.writable_dir_problem", lambda key, path: None)
    shared = "/proc/searchr1-nowhere/shared"
    with pytest.raises(PreflightError, match=f"^trainer.shared_dir={shared}: cannot create [^\\n]*$"):
        launch(context(tmp, [*overrides, f"trainer.shared_dir={shared}"]))
    assert calls(record) == []


def test_without_an_address_a_local_head_is_started_and_only_that_head_stopped(setup, monkeypatch):
    tmp, record, overrides = setup

    def head_runs() -> bool:  # the job server answers the readiness probe once the head runs, as Ray's does
        return any(c["argv"][:1] == ["start"] for c in calls(record))

    with FakeRayJobServer(serving=head_runs) as jobs:
        monkeypatch.setattr(launch_module, "LOCAL_RAY_ADDRESS", jobs.url)
        launch(context(tmp, overrides))
    start, submit, stopped = calls(record)
    assert start["argv"][:3] == ["start", "--head", "--block"]
    assert start["argv"][start["argv"].index("--num-gpus") + 1] == "8"
    assert submit["argv"][:2] == ["job", "submit"] and submit["argv"][submit["argv"].index("--address") + 1] == jobs.url
    # the head we started got SIGTERM; no `ray stop` (it would kill every Ray process on the node)
    assert stopped == {"argv": start["argv"], "signal": "SIGTERM"}


def test_a_local_head_that_cannot_start_ends_the_run_in_one_line(setup, monkeypatch):
    tmp, record, overrides = setup
    monkeypatch.setattr(launch_module, "HEAD_START_TIMEOUT_S", 2.0)
    monkeypatch.setattr(launch_module, "LOCAL_RAY_ADDRESS", "http://127.0.0.1:9")  # nothing answers
    with pytest.raises(SystemExit, match="did not answer"):
        launch(context(tmp, overrides))
    assert [c["argv"][:2] for c in calls(record)] == [["start", "--head"], ["start", "--head"]]  # started, stopped
    assert "job" not in [c["argv"][0] for c in calls(record)]


def test_a_local_head_that_exits_at_once_ends_the_run_in_one_line(setup, monkeypatch):
    tmp, record, overrides = setup
    monkeypatch.setenv("FAKE_RAY_START_EXIT", "1")
    with pytest.raises(SystemExit, match="exited with code 1 before it served jobs.*trainer.ray_address"):
        launch(context(tmp, overrides))
    assert [c["argv"][0] for c in calls(record)] == ["start"]


def test_preflight_failure_stops_before_anything_runs(setup):
    tmp, record, overrides = setup
    (tmp / "install" / "hf" / "config.json").unlink()
    with pytest.raises(PreflightError, match="model.hf_checkpoint="):
        launch(context(tmp, overrides))
    assert calls(record) == []


def write_test_split(path: Path, sources: list[str]) -> None:
    from searchr1.data.dataset import make_row, write_split

    rows = [
        make_row(row_id=str(i), question=f"q{i}", golden_answers=["a"], data_source=src, split="test", index=i)
        for i, src in enumerate(sources)
    ]
    write_split(rows, path)


def test_eval_gets_one_miles_dataset_per_data_source(setup):
    tmp, record, overrides = setup
    write_test_split(tmp / "install" / "data" / "test.parquet", ["nq", "hotpotqa", "nq"])
    ctx = context(tmp, [*overrides, "trainer.dry_run=true", "trainer.eval_interval=25"])
    launch(ctx)
    script = (ctx.run_dir / RunDir.MILES_COMMAND).read_text()
    eval_dir = ctx.run_dir / "eval_data"
    assert f"--eval-prompt-data hotpotqa {eval_dir / 'hotpotqa.parquet'} nq {eval_dir / 'nq.parquet'}" in script


def test_a_run_with_more_tools_gives_miles_a_training_file_with_their_prompt(setup):
    from searchr1.data.dataset import load_split, make_row, write_split

    tmp, _, overrides = setup
    train = tmp / "install" / "data" / "train.parquet"
    rows = [
        make_row(row_id="1", question="How old is X", golden_answers=["7"], data_source="s", split="train", index=0)
    ]
    write_split(rows, train)
    ctx = context(tmp, [*overrides, "trainer.dry_run=true", "tools=[search,calculator]"])
    launch(ctx)
    script = (ctx.run_dir / RunDir.MILES_COMMAND).read_text()
    copy = ctx.run_dir / "tool_data" / "train.parquet"
    assert f"--prompt-data {copy}" in script
    (example,) = load_split(copy)
    assert "<calculator> expression </calculator>" in example.prompt_messages[0]["content"]
    assert example.prompt_messages[0]["content"].endswith("Question: How old is X?\n")
    assert example.golden_answers == ["7"] and load_split(train)[0].prompt_messages != example.prompt_messages
    custom = yaml.safe_load((ctx.run_dir / "miles_custom_config.yaml").read_text())
    assert list(custom["searchr1"]["tools"]) == ["search", "calculator"]
