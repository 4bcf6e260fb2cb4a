"""Tracker: metrics.jsonl per step, an offline W&B run in the run dir, console lines, resume, finish."""

from __future__ import annotations

import json

import pytest

from searchr1.run import RunContext
from searchr1.metrics_file import read_metrics
from searchr1.tracking import Tracker, console_line
from searchr1.config import to_typed
from tests.support.compose import compose_config


def _ctx(tmp_path, mode: str) -> RunContext:
    cfg = compose_config([f"logger.mode={mode}", "logger.tags=[test]"])
    return RunContext.build(cfg, to_typed(cfg), tmp_path / "run", sweep_point={"search.topk": "3"})


def test_disabled_mode_writes_jsonl_and_console_only(tmp_path, capsys):
    ctx = _ctx(tmp_path, "disabled")
    with Tracker(ctx, total_steps=2) as tracker:
        tracker.log({"reward/exact_match": 0.5, "tis/effective_sample_size": 9.5}, step=1)
        tracker.log({"reward/exact_match": 0.75, "note": "text"}, step=2)
    assert read_metrics(ctx.run_dir) == [
        {"step": 1, "reward/exact_match": 0.5, "tis/effective_sample_size": 9.5},
        {"step": 2, "reward/exact_match": 0.75, "note": "text"},
    ]
    assert not (ctx.run_dir / "wandb").exists()
    printed = capsys.readouterr()
    assert "step 2/2 | em 0.750" in printed.out  # the compact line per step
    assert "2/2" in printed.err  # the progress bar
    assert "reward/exact_match  0.75" in printed.out  # the final summary


def test_resume_drops_steps_after_the_checkpoint(tmp_path):
    ctx = _ctx(tmp_path, "disabled")
    with Tracker(ctx) as tracker:
        for step in (1, 2, 3):
            tracker.log({"x": float(step)}, step=step)
    with Tracker(ctx, start_step=2) as tracker:
        tracker.log({"x": 30.0}, step=3)
    assert [(r["step"], r["x"]) for r in read_metrics(ctx.run_dir)] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    with Tracker(ctx) as tracker:  # a fresh (not resumed) run starts over
        tracker.log({"x": 5.0}, step=1)
    assert read_metrics(ctx.run_dir) == [{"step": 1, "x": 5.0}]


def test_non_finite_and_tensor_values_are_json_safe(tmp_path):
    torch = pytest.importorskip("torch")
    ctx = _ctx(tmp_path, "disabled")
    with Tracker(ctx) as tracker:
        tracker.log({"a": float("nan"), "b": torch.tensor(2.5)}, step=1)
    assert json.loads((ctx.run_dir / "metrics.jsonl").read_text()) == {"step": 1, "a": None, "b": 2.5}


@pytest.mark.slow
def test_offline_wandb_run_lives_in_the_run_dir_and_finish_is_idempotent(tmp_path):
    ctx = _ctx(tmp_path, "offline")
    tracker = Tracker(ctx, total_steps=1)
    try:
        tracker.log({"reward/format": 0.2}, step=1)
    finally:
        tracker.finish()
    tracker.finish()
    runs = list((ctx.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_id = (ctx.run_dir / "wandb_run_id").read_text().strip()
    assert runs[0].name.endswith(run_id)
    assert list(runs[0].glob("*.wandb"))


def test_console_line_shows_mission_metrics():
    line = console_line(
        {
            "step": 3,
            "reward/exact_match": 0.25,
            "search_r1/turns_per_sample": 1.5,
            "tis/effective_sample_size": 9.0,
            "other": 1.0,
        },
        total=10,
    )
    assert line == "step 3/10 | em 0.250 | turns 1.50 | ess 9.0"
