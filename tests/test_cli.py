"""The command line as users meet it: help, printed config, one-line errors before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_cli(*args: str, cwd, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "searchr1", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_groups_and_options(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for line in (
        "backend: google, local",
        "model: qwen2.5-0.5B, qwen2.5-3B, qwen2.5-3B-instruct, qwen2.5-7B, qwen2.5-7B-instruct, qwen3-0.6B, "
        "qwen3-1.7B, qwen3-4B, qwen3-8B, smollm2-135m",
        "tis: off, on",
        "reward: em, em+format, em+tool, f1, searchr1_qa_em_format",
        "trainer: local, miles",
        "retriever: bm25, dense",
        "data: nq_hotpotqa, synthetic",
        "logger: wandb",
    ):
        assert line in result.stdout
    groups = result.stdout.split("== Config groups", 1)[1].split("\n\n", 1)[0]
    assert not [line for line in groups.splitlines() if line.startswith(("schema/", "hydra/"))]  # users pick none


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run_cli("--cfg", "job", "backend=google", "rollout.max_turns=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "api_key_env: SERPER_API_KEY" in result.stdout
    assert "max_turns: 4" in result.stdout
    # trainer=local reaches outside trainer.*; the printed config says which keys it set.
    assert (
        "also_sets:\n  - rollout.max_turn_tokens\n  - rollout.max_response_len\n  - grpo.kl_loss_coef" in result.stdout
    )
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "args,expected",
    [
        (["rollout.max_turnz=3"], "unknown config key 'rollout.max_turnz' (did you mean 'rollout.max_turns'?)"),
        (["tis=maybe"], "unknown option tis=maybe; available: off, on"),
        (["search.topk=0"], "search.topk=0 is out of range; allowed: >= 1"),
        (["backend=google", "backend.api_key=abc"], "unknown config key 'backend.api_key'"),
        # '+' opens a typed node for a new key; a typo there must fail like any other.
        (["+rollout.max_turnz=3"], "unknown config key 'rollout.max_turnz' (did you mean 'rollout.max_turns'?)"),
        (["+foo=1"], "unknown config key 'foo'"),
    ],
)
def test_config_errors_exit_nonzero_with_one_line_before_anything_starts(tmp_path, args, expected):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert not (tmp_path / "outputs").exists(), "a run dir was created for an invalid config"


def test_secret_values_never_printed(tmp_path):
    result = run_cli("--cfg", "job", "backend=google", cwd=tmp_path, env_extra={"SERPER_API_KEY": "sk-do-not-print"})
    assert "sk-do-not-print" not in result.stdout + result.stderr


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single stderr line of a rejected command line (and no traceback)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def user_config_dir(tmp_path):
    """A --config-dir holding a user's own experiment preset."""
    conf = tmp_path / "my_conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("# @package _global_\nrollout:\n  max_turns: 3\n")
    (conf / "typo.yaml").write_text("# @package _global_\nrollout:\n  max_turnz: 3\n")
    return tmp_path / "my_conf"


@pytest.mark.parametrize(
    "args,expected",
    [
        # The example: a cross-field check under -m.
        (
            ["-m", "tis.level=geometric", "tis.batch_normalize=true"],
            "tis.batch_normalize=true needs tis.level token or sequence, not geometric",
        ),
        (["-m", "seed=0,1", "search.topk=0"], "search.topk=0 is out of range"),
        # Only the second point of the axis is bad: every point is checked before the first one runs.
        (["-m", "rollout.max_turns=1,100"], "rollout.max_turns=100 is out of range; allowed: >= 1 and <= 64"),
        # A sweep preset is a multirun without -m; its own axes are expanded too.
        (["+sweep=smoke_2x2", "search.topk=1,101"], "search.topk=101 is out of range"),
        (
            ["-m", "trainer=miles", "trainer.group_rm=true", "trainer.eval_interval=5"],
            "trainer.group_rm=true cannot be combined with trainer.eval_interval>0",
        ),
        (["--config-name", "nope"], "Cannot find primary config 'nope'"),
        (["--config-dir", "no_such_dir"], "no_such_dir is not a directory"),
        (["-m", "seed=0,1", "tis=maybe"], "unknown option tis=maybe; available: off, on"),
    ],
)
def test_multirun_and_config_flag_errors_are_one_line_before_any_job(tmp_path, args, expected):
    line = one_error_line(run_cli(*args, "logger.mode=disabled", cwd=tmp_path))
    assert expected in line
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_a_bad_sweep_point_is_named_in_the_error(tmp_path):
    line = one_error_line(run_cli("-m", "seed=0,1", "rollout.max_turns=2,65", cwd=tmp_path))
    assert line.startswith("searchr1: config error: rollout.max_turns=65 is out of range")
    assert "(sweep job: seed=0 rollout.max_turns=65)" in line


@pytest.mark.parametrize(
    "args,expected",
    [
        (["+experiment=typo"], "unknown config key 'rollout.max_turnz' (did you mean 'rollout.max_turns'?)"),
        (["+experiment=mine", "search.topk=0"], "search.topk=0 is out of range"),
        (
            ["-m", "+experiment=mine", "seed=0,1", "tis.level=geometric", "tis.batch_normalize=true"],
            "tis.batch_normalize=true needs tis.level",
        ),
    ],
)
def test_config_dir_errors_are_one_line(tmp_path, args, expected):
    config_dir = user_config_dir(tmp_path)
    line = one_error_line(run_cli("--config-dir", str(config_dir), *args, cwd=tmp_path))
    assert expected in line
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_config_dir_presets_compose(tmp_path):
    result = run_cli("--config-dir", str(user_config_dir(tmp_path)), "+experiment=mine", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "max_turns: 3" in result.stdout


def test_eval_config_errors_are_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "from searchr1.eval.cli import main; main()", "eval.pass_k=2"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = one_error_line(result)
    assert line == "searchr1-eval: config error: eval.pass_k>1 needs eval.temperature>0 (greedy samples are identical)"
    assert not (tmp_path / "outputs").exists()
