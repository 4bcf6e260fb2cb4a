"""The one-command sweep end to end: a 2x2 multirun of the embedded trainer, its report, its W&B runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from searchr1.report.cli import make_report
from searchr1.report.runs import find_runs
from tests.support.wandb_offline import offline_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_smoke_sweep_runs_reports_and_groups_in_wandb(tmp_path):
    sweep_dir = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "searchr1",
        "+sweep=smoke_2x2",
        f"hydra.sweep.dir={sweep_dir}",
        "data.num_entities=200",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # Every sweep point ran in its own dir and logged every step.
    runs = find_runs(sweep_dir)
    points = {(r.setting("rollout.max_turns"), r.setting("search.topk")) for r in runs}
    assert len(runs) == 4 and points == {(1, 1), (1, 2), (2, 1), (2, 2)}
    for run in runs:
        assert run.setting("sweep_name") == "smoke_2x2"
        assert len(run.history["reward/exact_match"]) == run.setting("trainer.steps")
        assert "search_r1/turns_per_sample" in run.history

    # The report: one row per point, curves, and the max_turns x topk heat map.
    report = make_report(sweep_dir)
    assert report.table.count("rollout.max_turns=") == 4
    for name in ("curves.png", "heatmap.png"):
        assert (report.out_dir / name).read_bytes().startswith(PNG_MAGIC)
    summary = json.loads((report.out_dir / "summary.json").read_text())
    assert {(s["axes"]["rollout.max_turns"], s["axes"]["search.topk"]) for s in summary} == points

    # W&B: one finished offline run per point, all in the sweep's group, each named after its point.
    wandb_runs = offline_runs(sweep_dir)
    assert len(wandb_runs) == 4 and len({r.run_id for r in wandb_runs}) == 4
    assert {r.group for r in wandb_runs} == {"smoke_2x2"}
    assert all(r.finished for r in wandb_runs), "each job must finish its W&B run before the next starts"
    for run in wandb_runs:
        max_turns, topk = _point(run)
        assert f"t{max_turns}" in run.name and f"k{topk}" in run.name, run.name


def _point(run) -> tuple[int, int]:
    """The sweep point as the W&B run's config records it."""
    rollout = json.loads(run.config["rollout"])
    search = json.loads(run.config["search"])
    return rollout["max_turns"], search["topk"]
