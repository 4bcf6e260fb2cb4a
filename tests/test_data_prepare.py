import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from searchr1.data import DataError
from searchr1.data.cli import main
from searchr1.data.dataset import SCHEMA, load_split
from searchr1.data.prepare import prepare
from searchr1.data.prompt import make_prompt

FIXTURE = Path(__file__).parent / "data" / "flashrag_fixture"


@pytest.fixture()
def source(tmp_path) -> Path:
    """A writable copy of the hub-layout fixture (tests break files in it)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "flashrag"))


def _table(path):
    return pq.read_table(path).to_pylist()


def test_train_merge_is_nq_then_hotpotqa_train_in_search_r1_schema(source, tmp_path):
    counts = prepare(source, tmp_path / "out")
    assert counts == {"train": 5, "test": 8}
    assert pq.read_schema(tmp_path / "out" / "train.parquet").remove_metadata() == SCHEMA
    rows = _table(tmp_path / "out" / "train.parquet")
    assert [(r["data_source"], r["extra_info"]) for r in rows] == [
        ("nq", {"split": "train", "index": 0}),
        ("nq", {"split": "train", "index": 1}),
        ("nq", {"split": "train", "index": 2}),
        ("hotpotqa", {"split": "train", "index": 0}),
        ("hotpotqa", {"split": "train", "index": 1}),
    ]
    assert rows[1] == {
        "id": "train_1",
        "question": "when did the first moon landing happen?",
        "golden_answers": ["1969", "July 20, 1969"],
        "data_source": "nq",
        "prompt": [{"role": "user", "content": make_prompt("when did the first moon landing happen")}],
        "ability": "fact-reasoning",
        "reward_model": {"style": "rule", "ground_truth": {"target": ["1969", "July 20, 1969"]}},
        "extra_info": {"split": "train", "index": 1},
    }
    assert rows[2]["prompt"][0]["content"].endswith("Question: what is the capital city of australia?\n")


def test_test_merge_prefers_test_then_dev_then_train_in_search_r1_order(source, tmp_path):
    (source / "musique" / "dev.jsonl").unlink()  # only train left: the original falls back to it
    prepare(source, tmp_path / "out")
    rows = _table(tmp_path / "out" / "test.parquet")
    assert [(r["data_source"], r["id"]) for r in rows] == [
        ("nq", "test_0"),
        ("nq", "test_1"),
        ("triviaqa", "test_0"),
        ("popqa", "test_0"),
        ("hotpotqa", "dev_0"),
        ("2wikimultihopqa", "dev_0"),
        ("musique", "train_0"),
        ("bamboogle", "test_0"),
    ]
    assert {r["extra_info"]["split"] for r in rows} == {"test"}
    examples = load_split(tmp_path / "out" / "test.parquet")
    assert examples[2].golden_answers == ["Japan", "Nippon"]
    assert examples[2].prompt_messages[0]["content"] == make_prompt("In which country is the city of Kyoto?")


def _run_cli(capsys, source, out):
    try:
        code = main(["prepare", "--source", str(source), "--out", str(out)])
    except SystemExit as exited:
        code = exited.code
    return code, capsys.readouterr()


def test_cli_prepares_from_a_local_copy(capsys, source, tmp_path):
    code, captured = _run_cli(capsys, source, tmp_path / "out")
    assert code == 0 and captured.err == ""
    assert "5 train and 8 test rows" in captured.out


@pytest.mark.parametrize(
    ("breakage", "words"),
    [
        (lambda s: (s / "hotpotqa" / "train.jsonl").unlink(), "missing input file"),
        (lambda s: shutil.rmtree(s / "popqa"), "popqa test split"),
        (
            lambda s: (s / "musique" / "dev.jsonl").write_text('{"id": "dev_0", "question": "trunc'),
            "dev.jsonl:1: not valid JSON",
        ),
        (
            lambda s: (s / "bamboogle" / "test.jsonl").write_text('{"id": 1, "question": "q"}\n'),
            "test.jsonl:1: 'golden_answers'",
        ),
        (lambda s: (s / "nq" / "train.jsonl").write_text('\n["a list"]\n'), "train.jsonl:2: expected a JSON object"),
    ],
)
def test_a_missing_or_corrupt_input_gives_one_error_line_and_no_output(capsys, source, tmp_path, breakage, words):
    breakage(source)
    code, captured = _run_cli(capsys, source, tmp_path / "out")
    assert code != 0
    assert captured.err.count("\n") == 1 and captured.err.startswith("searchr1-data: error: ")
    assert words in captured.err
    assert not (tmp_path / "out").exists()


def test_a_failure_keeps_earlier_outputs_in_an_existing_directory(source, tmp_path):
    out = tmp_path / "out"
    prepare(source, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (source / "bamboogle" / "test.jsonl").write_text("{oops\n")
    with pytest.raises(DataError):
        prepare(source, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_hub_source_offline_is_one_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, captured = _run_cli(capsys, "hub", tmp_path / "out")
    assert code != 0 and captured.err.count("\n") == 1 and "RUC-NLPIR/FlashRAG_datasets" in captured.err
    assert not (tmp_path / "out").exists()
