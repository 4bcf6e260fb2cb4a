"""metrics.jsonl: the one writer both trainers use (NaN as null, a resumed run's redone steps replace
the old lines) and the one reader reports use (a partial last line is skipped)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from searchr1.metrics_file import MetricsWriter, drop_steps_after, read_metrics, read_records
from searchr1.report.runs import read_history
from searchr1.trainers.miles import rollout_log


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_non_finite_values_are_written_as_null_in_strict_json(tmp_path):
    path = tmp_path / "metrics.jsonl"
    MetricsWriter(path, done_steps=0).append(1, {"a": math.nan, "b": math.inf, "c": 1.5, "note": "x"})
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    assert _lines(path) == [{"step": 1, "a": None, "b": None, "c": 1.5, "note": "x"}]


def test_known_resume_point_keeps_the_steps_before_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    first = MetricsWriter(path, done_steps=0)
    for step in (0, 1, 2, 3):
        first.append(step, {"x": float(step)})
    MetricsWriter(path, done_steps=2).append(3, {"x": 30.0})
    assert [(r["step"], r["x"]) for r in read_records(path)] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 30.0)]
    MetricsWriter(path, done_steps=0)  # a fresh run starts the file over
    assert not path.exists()


def test_unknown_resume_point_is_decided_by_the_first_step_written(tmp_path):
    # Miles resumes inside its actors: the rollout hook only sees the first rollout id it logs.
    path = tmp_path / "metrics.jsonl"
    for step in (0, 1, 2, 3, 4):
        rollout_log.append_metrics(path, step, {"x": float(step)})
    rollout_log._METRICS_WRITERS.clear()  # a new process after a restart from the checkpoint after rollout 1
    rollout_log.append_metrics(path, 2, {"x": 20.0})
    rollout_log.append_metrics(path, 3, {"x": 30.0})
    assert [(r["step"], r["x"]) for r in read_records(path)] == [(0, 0.0), (1, 1.0), (2, 20.0), (3, 30.0)]


def test_the_miles_hooks_write_the_local_trainers_format(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    rollout_log.append_metrics(path, 0, {"reward/total": math.nan, "search/calls": 4.0})
    assert _lines(path) == [{"step": 0, "reward/total": None, "search/calls": 4.0}]


def test_a_partial_last_line_is_skipped_by_the_reader_and_repaired_by_the_next_writer(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "x": 1.0}\n{"step": 2, "x": 2.0}\n{"step": 3, "x"')  # killed mid-write
    assert [r["step"] for r in read_records(path)] == [1, 2]
    assert read_history(path) == {"x": [(1, 1.0), (2, 2.0)]}
    MetricsWriter(path).append(3, {"x": 3.0})
    assert _lines(path) == [{"step": 1, "x": 1.0}, {"step": 2, "x": 2.0}, {"step": 3, "x": 3.0}]


def test_reader_skips_lines_without_an_integer_step_and_reads_a_run_dir(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('\n[1, 2]\n{"x": 1}\n{"step": "2", "x": 2}\n{"step": 4, "x": null}\n')
    assert read_metrics(tmp_path) == [{"step": 4, "x": None}]
    assert read_metrics(tmp_path / "missing") == []


def test_drop_steps_after_keeps_the_checkpoints_steps(tmp_path):
    path = tmp_path / "rollouts.jsonl"
    path.write_text("".join(json.dumps({"step": s, "i": i}) + "\n" for s in (1, 2, 3) for i in (0, 1)))
    drop_steps_after(path, 2)
    assert [(r["step"], r["i"]) for r in read_records(path)] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    drop_steps_after(path, 0)
    assert not path.exists()


def test_importing_it_pulls_in_neither_wandb_nor_omegaconf():
    # The Miles hooks write it inside Ray actors.
    code = (
        "import sys, searchr1.metrics_file; "
        "print(sorted(m for m in ('wandb', 'omegaconf', 'hydra', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
