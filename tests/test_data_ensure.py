import dataclasses
import threading
import time

import pytest

from searchr1.config.schema import DataConfig
from searchr1.data import DataError, ensure_data
from searchr1.data.dataset import load_split
from tests.support.data import synthetic_data_config


def test_missing_synthetic_files_are_generated_fast_at_the_config_paths(tmp_path):
    cfg = synthetic_data_config(tmp_path / "nested" / "dir", num_entities=2000)
    start = time.perf_counter()
    ensure_data(cfg)
    assert time.perf_counter() - start < 5.0
    assert len(load_split(cfg.train_path)) > 4000 and len(load_split(cfg.test_path)) > 400


def test_existing_files_are_left_alone(tmp_path):
    cfg = synthetic_data_config(tmp_path)
    ensure_data(cfg)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    ensure_data(cfg)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_one_missing_file_is_refused_and_the_others_are_left_alone(tmp_path):
    cfg = synthetic_data_config(tmp_path)
    ensure_data(cfg)
    (tmp_path / "corpus.jsonl").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(DataError, match=f"data.corpus_path={tmp_path}/corpus.jsonl: file not found, but"):
        ensure_data(cfg)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_a_mistyped_dir_is_refused_in_one_line_before_anything_is_written(tmp_path):
    # The repro: data.train_path=<a dir that does not exist>/train.parquet beside the default cache paths
    # wrote train.parquet there and the other two into the cache, which every later run then refused.
    cache, typo = tmp_path / "cache" / "synthetic", tmp_path / "typo"
    cfg = dataclasses.replace(synthetic_data_config(cache), train_path=str(typo / "train.parquet"))
    with pytest.raises(DataError) as info:
        ensure_data(cfg)
    assert str(info.value) == (
        f"data.train_path={typo}/train.parquet: file not found, and not in the dir of data.test_path ({cache}); "
        "synthetic data is generated only as a whole set in one dir (fix the path, or point all three paths at "
        "one new dir)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_set_that_fails_halfway_leaves_nothing_behind(tmp_path, monkeypatch):
    import searchr1.data.synthetic as synthetic

    def write_split(rows, path):
        if path.name == "train.parquet":  # the last file of the set
            raise OSError("disk full")
        real_write_split(rows, path)

    real_write_split = synthetic.write_split
    monkeypatch.setattr(synthetic, "write_split", write_split)
    cfg = synthetic_data_config(tmp_path / "set")
    with pytest.raises(OSError, match="disk full"):
        ensure_data(cfg)
    assert list(tmp_path.iterdir()) == []  # neither the corpus and test split nor a temporary dir
    monkeypatch.setattr(synthetic, "write_split", real_write_split)
    ensure_data(cfg)  # a later run generates the whole set
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["corpus.jsonl", "test.parquet", "train.parquet"]


def test_concurrent_callers_all_see_complete_files_and_leave_no_temp_files(tmp_path):
    cfg = synthetic_data_config(tmp_path)
    errors = []

    def call():
        try:
            ensure_data(cfg)
            load_split(cfg.train_path)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below, on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "test.parquet", "train.parquet"]


@pytest.mark.parametrize(
    ("missing", "command"),
    [("train.parquet", "searchr1-data prepare"), ("wiki-18.jsonl", "searchr1-data download")],
)
def test_missing_real_data_names_the_file_and_the_command_that_makes_it(tmp_path, missing, command):
    paths = {
        "train_path": tmp_path / "train.parquet",
        "test_path": tmp_path / "test.parquet",
        "corpus_path": tmp_path / "wiki-18.jsonl",
    }
    for path in paths.values():
        if path.name != missing:
            path.write_text("x")
    cfg = DataConfig(name="nq_hotpotqa", **{k: str(v) for k, v in paths.items()})
    with pytest.raises(DataError) as info:
        ensure_data(cfg)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / missing) in message and command in message
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values() if p.name != missing)
