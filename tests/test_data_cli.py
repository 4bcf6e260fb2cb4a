import hashlib
import shutil
import subprocess
from pathlib import Path

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


def test_console_script_writes_the_same_bytes_as_ensure_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHR1_CACHE", str(tmp_path / "cache"))
    cfg = to_typed(compose_config(["data.num_entities=100"])).data
    ensure_data(cfg)
    exe = shutil.which("searchr1-data")
    assert exe, "searchr1-data console script not installed"
    out = tmp_path / "cli"
    run = subprocess.run(
        [exe, "synthetic", "--out", str(out), "--num-entities", "100"], capture_output=True, text=True, check=True
    )
    assert "100 passages" in run.stdout
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    for name, path in (
        ("train.parquet", cfg.train_path),
        ("test.parquet", cfg.test_path),
        ("corpus.jsonl", cfg.corpus_path),
    ):
        assert digest(out / name) == digest(Path(path))
