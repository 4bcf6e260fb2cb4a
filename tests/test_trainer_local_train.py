"""End to end on the real SmolLM2 with tiny settings: a run leaves the mission metrics in
metrics.jsonl and an offline W&B run; a run killed midway resumes from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchr1.config import to_typed
from searchr1.data.dataset import load_split, of_sources
from searchr1.run import RunContext
from searchr1.metrics_file import read_metrics
from searchr1.trainers.local.sampler import PromptSampler
from searchr1.paths import RunDir
from searchr1.trainers.local.train import train
from tests.support.compose import compose_config
from tests.support.data import TINY_ROLLOUT

MISSION_METRICS = (
    "search_r1/turns_per_sample",
    "search_r1/search_calls_per_sample",
    "reward/exact_match",
    "reward/format",
    "loss_mask/observation_fraction",
    "tis/effective_sample_size",
)
TINY = TINY_ROLLOUT


def _rollout_indices(run_dir: Path) -> dict[int, list[int]]:
    by_step: dict[int, list[int]] = {}
    for line in (run_dir / RunDir.ROLLOUTS).read_text().splitlines():
        row = json.loads(line)
        by_step.setdefault(row["step"], []).append(row["index"])
    return by_step


def _expected_indices(cfg, steps: int) -> dict[int, list[int]]:
    examples = of_sources(load_split(cfg.data.train_path), cfg.data.train_sources, cfg.data.train_path)
    sampler = PromptSampler(len(examples), cfg.trainer.prompts_per_step, cfg.seed, cfg.data.shuffle)
    n = cfg.rollout.n_samples_per_prompt
    return {step: [examples[i].index for i in sampler.next_batch() for _ in range(n)] for step in range(1, steps + 1)}


@pytest.mark.slow
def test_tiny_run_logs_mission_metrics_to_jsonl_and_offline_wandb(tmp_path, capsys):
    cfg = compose_config(
        TINY
        + [
            "trainer.steps=2",
            "logger.mode=offline",
            "tis=on",
            "grpo.kl_loss_coef=0.001",
            "trainer.eval_every=2",
            "trainer.eval_prompts=1",
            "data.train_sources=[synthetic_2hop]",
        ]
    )
    ctx = RunContext.build(cfg, to_typed(cfg), tmp_path / "run")
    train(ctx)
    baseline, *rows = read_metrics(ctx.run_dir)
    assert baseline["step"] == 0 and "eval/exact_match" in baseline  # the starting policy, before any update
    assert not any(key.startswith(("reward/", "train/")) for key in baseline)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        missing = [key for key in MISSION_METRICS if not isinstance(row.get(key), (int, float))]
        assert not missing, f"metrics.jsonl lacks {missing}"
        assert row["tis/effective_sample_size"] > 0
        assert row["perf/rollout_tokens_per_s"] > 0 and row["perf/train_tokens_per_s"] > 0
        assert "train/kl_loss" in row and "train/loss" in row
    assert "eval/exact_match" in rows[1] and "eval/exact_match" not in rows[0]  # the key reports read
    assert len(list((ctx.run_dir / "wandb").glob("offline-run-*/*.wandb"))) == 1
    assert (ctx.run_dir / "checkpoints" / "LATEST").read_text().strip() == "step_000002.pt"
    assert (ctx.run_dir / "policy" / "adapter_config.json").is_file()  # the trained policy, for eval.checkpoint
    assert _rollout_indices(ctx.run_dir) == _expected_indices(ctx.cfg, 2)  # 2-hop prompts only
    two_hop = {e.question for e in load_split(ctx.cfg.data.train_path) if e.data_source == "synthetic_2hop"}
    questions = [json.loads(line)["question"] for line in (ctx.run_dir / RunDir.ROLLOUTS).read_text().splitlines()]
    assert set(questions) <= two_hop
    printed = capsys.readouterr().out
    assert "step 2/2" in printed and "metrics at step 2:" in printed and "tis/effective_sample_size" in printed


def _three_step_run(run_dir: Path) -> list[str]:
    # An entropy bonus and a firm learning rate: the weights move every step even when no sample earns a
    # reward (at these sizes none does, and a zero-advantage loss would be 0 whatever the weights were).
    return [
        sys.executable,
        "-m",
        "searchr1",
        *TINY,
        "trainer.steps=3",
        "grpo.entropy_coef=0.1",
        "trainer.lr=1e-2",
        "logger.mode=disabled",
        f"hydra.run.dir={run_dir}",
    ]


def _losses(run_dir: Path) -> dict[int, float]:
    return {row["step"]: row["train/loss"] for row in read_metrics(run_dir) if "train/loss" in row}


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    """SIGKILL a 3-step run once its first checkpoint exists; the resumed run continues from that
    checkpoint: steps 1..3 logged once each, with the same prompts and the same losses per step as an
    uninterrupted run (weights, optimizer moments and RNG states all come back)."""
    run_dir = tmp_path / "run"
    args = _three_step_run(run_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = run_dir / "checkpoints" / "LATEST"
    try:
        deadline = time.monotonic() + 600
        while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert latest.exists(), "the run ended or stalled before its first checkpoint"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = int(latest.read_text().strip()[len("step_") : -len(".pt")])
    assert killed_at < 3, "the run finished before it could be killed"

    resumed = subprocess.run(args + ["trainer.resume=true"], env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"at step {killed_at}" in resumed.stdout + resumed.stderr
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3]
    cfg = to_typed(compose_config(TINY + ["trainer.steps=3"]))
    assert _rollout_indices(run_dir) == _expected_indices(cfg, 3)

    uninterrupted = tmp_path / "uninterrupted"
    subprocess.run(_three_step_run(uninterrupted), env=env, capture_output=True, timeout=900, check=True)
    expected = _losses(uninterrupted)
    assert sorted(expected) == [1, 2, 3]
    assert _losses(run_dir) == pytest.approx(expected, rel=1e-4, abs=1e-6), f"killed after step {killed_at}"
