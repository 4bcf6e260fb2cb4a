import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from searchr1.data import DataError, ensure_data
from searchr1.data.dataset import SCHEMA, load_split, make_row, of_sources, write_split
from searchr1.data.prompt import make_prompt, styled_messages
from searchr1.data.synthetic import generate
from tests.support.data import SMALL_ENTITIES, synthetic_data_config


def test_synthetic_splits_round_trip_through_the_parquet_schema(tmp_path):
    cfg = synthetic_data_config(tmp_path)
    ensure_data(cfg)
    book = generate(cfg.seed, SMALL_ENTITIES)
    for path, questions, split in ((cfg.train_path, book.train, "train"), (cfg.test_path, book.test, "test")):
        assert pq.read_schema(path).remove_metadata() == SCHEMA
        examples = load_split(path)
        assert [e.question for e in examples] == [q.text for q in questions]
        assert [e.golden_answers for e in examples] == [q.answers for q in questions]
        assert [e.data_source for e in examples] == [q.data_source for q in questions]
        assert [e.index for e in examples] == list(range(len(questions)))
        assert all(e.prompt_messages == [{"role": "user", "content": make_prompt(e.question)}] for e in examples)
        assert {r["split"] for r in pq.read_table(path).column("extra_info").to_pylist()} == {split}


def test_rows_read_the_way_miles_reads_them(tmp_path):
    # Miles: pyarrow to_pylist, prompt = row["prompt"] (--input-key), label = row["reward_model"].
    path = tmp_path / "x.parquet"
    write_split(
        [make_row(row_id="t_0", question=" who? ", golden_answers=["a", "b"], data_source="nq", split="test", index=0)],
        path,
    )
    (row,) = pq.read_table(path).to_pylist()
    assert row["prompt"] == [{"role": "user", "content": make_prompt("who?")}]
    assert row["reward_model"] == {"style": "rule", "ground_truth": {"target": ["a", "b"]}}
    assert row["extra_info"] == {"split": "test", "index": 0}
    assert (row["ability"], row["question"], row["id"]) == ("fact-reasoning", "who?", "t_0")


def test_files_without_the_passthrough_columns_still_load(tmp_path):
    # E.g. a parquet made by other tools with only Search-R1's five columns.
    path = tmp_path / "five.parquet"
    row = make_row(row_id="0", question="where is x", golden_answers=["y"], data_source="nq", split="train", index=4)
    table = pa.Table.from_pylist([row], schema=SCHEMA).drop_columns(["id", "question", "golden_answers"])
    pq.write_table(table, path)
    (example,) = load_split(path)
    assert (example.question, example.golden_answers, example.index) == ("where is x?", ["y"], 4)


def test_unreadable_or_foreign_files_give_one_line_errors(tmp_path):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet")
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"text": ["x"]}), foreign)
    for path, words in (
        (tmp_path / "absent.parquet", "does not exist"),
        (garbage, "not a readable parquet"),
        (foreign, "lacks column(s) data_source"),
    ):
        with pytest.raises(DataError) as info:
            load_split(path)
        assert words in str(info.value) and "\n" not in str(info.value)


def test_load_split_applies_the_prompt_style(tmp_path):
    path = tmp_path / "one.parquet"
    write_split(
        [make_row(row_id="0", question="who?", golden_answers=["a"], data_source="nq", split="train", index=0)], path
    )
    (plain,) = load_split(path)
    (demo,) = load_split(path, "demo")
    assert demo.prompt_messages == styled_messages(plain.prompt_messages, "demo") != plain.prompt_messages
    assert (demo.question, demo.golden_answers) == (plain.question, plain.golden_answers)


def test_train_sources_keep_only_the_listed_data_sources(tmp_path):
    cfg = synthetic_data_config(tmp_path)
    ensure_data(cfg)
    examples = load_split(cfg.train_path)
    two_hop = of_sources(examples, ["synthetic_2hop"], cfg.train_path)
    assert two_hop == [e for e in examples if e.data_source == "synthetic_2hop"] and 0 < len(two_hop) < len(examples)
    assert of_sources(examples, [], cfg.train_path) == examples
    with pytest.raises(DataError, match=r"selects no prompt of .*its sources: \['synthetic_1hop', 'synthetic_2hop'\]"):
        of_sources(examples, ["nq"], cfg.train_path)
