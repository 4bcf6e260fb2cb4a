"""Tracker: metrics.jsonl per step, an offline W&B run in the run dir, console lines, resume, finish."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading

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


class _Sink(http.server.BaseHTTPRequestHandler):
    """Answers every request 404 and records its method and path on the server."""

    def _record(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        self.send_response(404)
        self.end_headers()

    def do_GET(self) -> None:  # http.server's naming
        self._record()

    def do_POST(self) -> None:  # http.server's naming
        self._record()

    def log_message(self, *args) -> None:
        pass


_OFFLINE_RUNS = """
import sys
from pathlib import Path
from searchr1.config import to_typed
from searchr1.config.compose import compose_config
from searchr1.run import RunContext
from searchr1.tracking import Tracker
cfg = compose_config(["logger.mode=offline"])
for i in range(4):
    ctx = RunContext.build(cfg, to_typed(cfg), Path(sys.argv[1]) / str(i))
    ctx.run_dir.mkdir(parents=True)
    with Tracker(ctx) as tracker:
        for step in (1, 2, 3):
            tracker.log({"reward/exact_match": 0.1 * step}, step=step)
"""


@pytest.mark.slow
def test_offline_wandb_runs_send_nothing_to_the_wandb_server(tmp_path):
    # wandb 0.31 posts its own telemetry (POST /sdk/otel/v1/metrics) from finish() even in offline mode.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["WANDB_BASE_URL"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        subprocess.run([sys.executable, "-c", _OFFLINE_RUNS, str(tmp_path)], env=env, check=True, timeout=300)
    finally:
        server.shutdown()
        server.server_close()
    assert len(list(tmp_path.glob("*/wandb/offline-run-*"))) == 4
    assert server.seen == []  # type: ignore[attr-defined]


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
