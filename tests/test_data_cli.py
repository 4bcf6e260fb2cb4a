import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from searchr1.config import to_typed
from searchr1.data import ensure_data
from searchr1.data.dataset import load_split
from tests.support.compose import compose_config


def test_default_config_data_is_generated_into_the_cache_by_seed_and_size(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHR1_CACHE", str(tmp_path))
    cfg = to_typed(compose_config(["data.seed=5", "data.num_entities=100"])).data
    assert cfg.train_path == str(tmp_path / "synthetic-v2-s5-n100" / "train.parquet")
    ensure_data(cfg)
    assert len(load_split(cfg.test_path)) > 0


@pytest.mark.parametrize(("data", "questions"), [("synthetic", []), ("synthetic_years", ["--questions", "years"])])
def test_console_script_writes_the_same_bytes_as_ensure_data(tmp_path, monkeypatch, data, questions):
    monkeypatch.setenv("SEARCHR1_CACHE", str(tmp_path / "cache"))
    cfg = to_typed(compose_config([f"data={data}", "data.num_entities=100"])).data
    ensure_data(cfg)
    exe = shutil.which("searchr1-data")
    assert exe, "searchr1-data console script not installed"
    out = tmp_path / "cli"
    run = subprocess.run(
        [exe, "synthetic", "--out", str(out), "--num-entities", "100", *questions],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "100 passages" in run.stdout
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    for name, path in (
        ("train.parquet", cfg.train_path),
        ("test.parquet", cfg.test_path),
        ("corpus.jsonl", cfg.corpus_path),
    ):
        assert digest(out / name) == digest(Path(path))


def test_the_years_data_has_its_own_cache_dir_and_an_unknown_question_set_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHR1_CACHE", str(tmp_path))
    cfg = to_typed(compose_config(["data=synthetic_years", "data.num_entities=100"])).data
    assert cfg.questions == "years" and cfg.train_path == str(tmp_path / "synthetic-v2-years-s0-n100" / "train.parquet")
    run = subprocess.run(
        [shutil.which("searchr1-data"), "synthetic", "--out", str(tmp_path / "x"), "--questions", "dates"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "searchr1-data: error: --questions=dates is unknown; allowed: lookup, years"
    )
