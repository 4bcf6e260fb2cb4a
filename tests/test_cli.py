"""The command line as users meet it: help, printed config, one-line errors before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_cli(*args: str, cwd, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "searchr1", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_help_lists_groups_and_options(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for line in ("backend: google, local", "model: qwen2.5-3B, qwen2.5-7B, smollm2-135m", "tis: off, on",
                 "reward: em, em+format", "trainer: local, miles", "retriever: bm25, dense",
                 "data: nq_hotpotqa, synthetic", "logger: wandb"):
        assert line in result.stdout


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run_cli("--cfg", "job", "backend=google", "rollout.max_turns=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "api_key_env: SERPER_API_KEY" in result.stdout
    assert "max_turns: 4" in result.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "args,expected",
    [
        (["rollout.max_turnz=3"], "unknown config key 'rollout.max_turnz' (did you mean 'rollout.max_turns'?)"),
        (["tis=maybe"], "unknown option tis=maybe; available: off, on"),
        (["search.topk=0"], "search.topk=0 is out of range; allowed: >= 1"),
        (["backend=google", "backend.api_key=abc"], "unknown config key 'backend.api_key'"),
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
