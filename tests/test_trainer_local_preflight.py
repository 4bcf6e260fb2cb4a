"""Bad run-time input to the local trainer fails fast, in one line that names the key, through the
real CLI (``python -m searchr1``), before any model load or W&B init; and two runs cannot share a
run dir at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchr1.config import to_typed
from searchr1.preflight import PreflightError, run_dir_lock
from searchr1.trainers.local.preflight import preflight
from tests.support.compose import compose_config
from tests.support.data import SMALL_ENTITIES

FAST_S = 15.0
SMALL = [f"data.num_entities={SMALL_ENTITIES}", "logger.mode=disabled", "trainer.steps=1"]


def run_cli(overrides: list[str], tmp_path: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    args = [sys.executable, "-m", "searchr1", *SMALL, f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    environment = {k: v for k, v in os.environ.items() if k != "SERPER_API_KEY"}
    started = time.monotonic()
    done = subprocess.run(args, env={**environment, **(env or {})}, capture_output=True, text=True, timeout=300)
    return done, time.monotonic() - started


def assert_one_line_failure(done: subprocess.CompletedProcess, elapsed: float, needle: str) -> None:
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if "ERROR" in line or "error:" in line]
    assert done.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert len(errors) == 1 and needle in errors[0], output[-2000:]
    assert "loaded smollm2" not in output  # failed before the model load
    assert elapsed < FAST_S, f"took {elapsed:.1f}s"


def synthetic_set(root: Path) -> list[str]:
    return [
        f"data.train_path={root}/train.parquet",
        f"data.test_path={root}/test.parquet",
        f"data.corpus_path={root}/corpus.jsonl",
    ]


@pytest.mark.slow  # each case starts `python -m searchr1`
@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["backend=google"], "SERPER_API_KEY"),
        (["search.replay_path=/nonexistent/search_record.jsonl"], "search.replay_path=/nonexistent"),
        (["model.hf_checkpoint=/nonexistent/model"], "model.hf_checkpoint=/nonexistent/model"),
        (["backend.urls=[notaurl]"], "backend.urls: 'notaurl' is not an http(s) URL"),
        (["backend.urls=[http://127.0.0.1:9]"], "retriever http://127.0.0.1:9 is not reachable"),
        (["retriever=dense", "retriever.encoder=/nonexistent/e5"], "retriever.encoder=/nonexistent/e5"),
    ],
    ids=["google-no-key", "replay-missing", "model-missing", "url-not-a-url", "url-dead", "encoder-missing"],
)
def test_bad_input_fails_in_one_line_before_the_model_loads(tmp_path, overrides, needle):
    assert_one_line_failure(*run_cli(overrides, tmp_path), needle)


def test_a_preflight_problem_is_the_only_line_printed_and_leaves_no_run_dir(tmp_path):
    # It used to be three timestamped log lines (the run's name, the error, the run dir) and an empty run dir.
    done, elapsed = run_cli(["search.replay_path=/nonexistent/search_record.jsonl"], tmp_path)
    assert done.returncode == 2 and elapsed < FAST_S
    assert (done.stdout + done.stderr).splitlines() == [
        "searchr1: config error: local trainer preflight failed: search.replay_path=/nonexistent/search_record.jsonl: "
        "file not found (make it with `a run with search.record=true`)"
    ]
    assert not (tmp_path / "run").exists()


def test_a_run_dir_holding_earlier_work_is_kept_after_a_preflight_problem(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    done, _ = run_cli(["search.replay_path=/nonexistent/search_record.jsonl"], tmp_path)
    assert done.returncode == 2 and (tmp_path / "run" / "checkpoints").is_dir()


def test_a_replay_path_that_is_a_directory_says_so(tmp_path):
    problems = preflight(to_typed(compose_config([*SMALL, f"search.replay_path={tmp_path}"])), tmp_path / "run", env={})
    assert problems == [
        f"search.replay_path={tmp_path} is a directory; name the file in it (made by `a run with search.record=true`)"
    ]


@pytest.mark.slow
def test_e5_without_its_index_file_fails_in_one_line(tmp_path):
    index = tmp_path / "wiki18" / "e5_Flat.index"
    done, elapsed = run_cli(
        ["retriever=e5", f"retriever.index_dir={index}", "retriever.encoder=all-MiniLM-L6-v2"], tmp_path
    )
    assert_one_line_failure(done, elapsed, f"retriever.index_dir={index}: no index file there")


@pytest.mark.slow
def test_paths_under_a_file_fail_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_failure(
        *run_cli([f"trainer.checkpoint_dir={blocker}/ckpt"], tmp_path),
        f"trainer.checkpoint_dir={blocker}/ckpt: cannot create a directory there",
    )
    assert_one_line_failure(
        *run_cli([f"retriever.index_dir={blocker}/bm25"], tmp_path),
        f"retriever.index_dir={blocker}/bm25: cannot create a directory there",
    )
    done = subprocess.run(
        [sys.executable, "-m", "searchr1", *SMALL, f"hydra.run.dir={blocker}/run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"searchr1: config error: hydra.run.dir={blocker}/run: cannot create a directory there, {blocker} is a file"
    ]


@pytest.mark.slow
def test_one_missing_file_of_a_synthetic_set_is_not_regenerated_over_the_others(tmp_path):
    from searchr1.data import ensure_data

    root = tmp_path / "synthetic"
    cfg = to_typed(compose_config([*SMALL, *synthetic_set(root)]))
    ensure_data(cfg.data)
    (root / "train.parquet").unlink()
    before = (root / "corpus.jsonl").stat().st_mtime_ns
    done, elapsed = run_cli(synthetic_set(root), tmp_path)
    assert_one_line_failure(done, elapsed, f"data.train_path={root}/train.parquet: file not found")
    assert (root / "corpus.jsonl").stat().st_mtime_ns == before and not (root / "train.parquet").exists()


def test_a_mistyped_data_dir_is_one_line_and_writes_nothing(tmp_path):
    # The repro: a fresh cache and data.train_path in a dir that does not exist. The run wrote
    # train.parquet there and the other two files into the cache, then trained; every later default run
    # was refused until the cache dir was deleted by hand.
    cache, typo = tmp_path / "cache", tmp_path / "typo"
    done, elapsed = run_cli([f"data.train_path={typo}/train.parquet"], tmp_path, env={"SEARCHR1_CACHE": str(cache)})
    assert_one_line_failure(done, elapsed, f"data.train_path={typo}/train.parquet: file not found, and not in the dir")
    assert not typo.exists() and not list(cache.glob("synthetic*"))


def test_a_complete_default_config_passes(tmp_path):
    cfg = to_typed(compose_config([*SMALL, *synthetic_set(tmp_path / "new")]))  # all missing: generated later
    assert preflight(cfg, tmp_path / "run", env={}) == []


@pytest.mark.slow
def test_two_runs_cannot_share_a_run_dir_at_once(tmp_path):
    with run_dir_lock(tmp_path / "run"):
        done, elapsed = run_cli([], tmp_path)
        assert_one_line_failure(
            done, elapsed, f"hydra.run.dir={tmp_path / 'run'} is in use by another run (pid {os.getpid()})"
        )
        with pytest.raises(PreflightError, match="in use by another run"):
            with run_dir_lock(tmp_path / "run"):
                pass
    with run_dir_lock(tmp_path / "run"):  # released when its holder is done
        pass
