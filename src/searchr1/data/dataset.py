"""Search-R1's parquet schema: building rows, writing splits and the one reader both trainers use.

A row is what Search-R1's ``qa_search_*_merge.py`` scripts write and what Miles reads with
``--input-key prompt --label-key reward_model --apply-chat-template``:

- ``data_source``: dataset name (``nq``, ``hotpotqa``, ...), picks the reward in the original;
- ``prompt``: ``[{"role": "user", "content": <Search-R1 template + question>}]``;
- ``ability``: ``"fact-reasoning"``;
- ``reward_model``: ``{"style": "rule", "ground_truth": {"target": [answers]}}``;
- ``extra_info``: ``{"split": ..., "index": <row number within its source dataset>}``.

The original scripts map over FlashRAG rows without dropping their columns, so their parquet
also carries ``id``, ``question`` (stripped, ending in '?') and ``golden_answers``; we write the
same three so files made here and files made by Search-R1 read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from searchr1.data.errors import DataError
from searchr1.data.files import atomic_path
from searchr1.data.prompt import normalize_question, prompt_messages, styled_messages

ABILITY = "fact-reasoning"

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("question", pa.string()),
        ("golden_answers", pa.list_(pa.string())),
        ("data_source", pa.string()),
        ("prompt", pa.list_(_MESSAGE)),
        ("ability", pa.string()),
        (
            "reward_model",
            pa.struct([("style", pa.string()), ("ground_truth", pa.struct([("target", pa.list_(pa.string()))]))]),
        ),
        ("extra_info", pa.struct([("split", pa.string()), ("index", pa.int64())])),
    ]
)
# What a reader needs; files from elsewhere (e.g. PeterJinGo/nq_hotpotqa_train) may lack the rest.
REQUIRED_COLUMNS = ("data_source", "prompt", "reward_model", "extra_info")


@dataclass(frozen=True)
class QAExample:
    """One prompt of a split, as both trainers consume it."""

    question: str
    prompt_messages: list[dict[str, str]]
    """Chat messages to render with the tokenizer's chat template (add_generation_prompt=True)."""
    golden_answers: list[str]
    data_source: str
    index: int
    """Row number within its source dataset (Search-R1's extra_info.index; not unique in a merge)."""


def make_row(
    *, row_id: str, question: str, golden_answers: Sequence[str], data_source: str, split: str, index: int
) -> dict[str, Any]:
    """One parquet row in Search-R1's schema."""
    question = normalize_question(question)
    answers = [str(answer) for answer in golden_answers]
    return {
        "id": row_id,
        "question": question,
        "golden_answers": answers,
        "data_source": data_source,
        "prompt": prompt_messages(question),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": {"target": answers}},
        "extra_info": {"split": split, "index": index},
    }


def write_split(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write rows as parquet, atomically (readers see the old file or the whole new one)."""
    table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
    with atomic_path(Path(path)) as tmp:
        pq.write_table(table, tmp)


def load_split(path: str | Path, prompt_style: str = "searchr1") -> list[QAExample]:
    """Read a Search-R1 parquet into examples, in file order, prompts in ``prompt_style``
    (see :func:`searchr1.data.prompt.styled_messages`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"data file {path} is not a readable parquet file: {exc}") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise DataError(f"data file {path} lacks column(s) {', '.join(missing)} of Search-R1's schema")
    return [_example(row, prompt_style) for row in table.to_pylist()]


def rewrite_prompts(src: str | Path, dst: Path, messages_for: Callable[[str], list[dict[str, str]]]) -> Path:
    """A copy of a split whose ``prompt`` column is ``messages_for(question)``, for a trainer that reads the
    file as it is (Miles) when the prompt is not the one stored (a run with tools other than search)."""
    table = pq.read_table(src)
    examples = [_example(row, "searchr1") for row in table.to_pylist()]
    column = table.schema.get_field_index("prompt")
    prompts = pa.array([messages_for(e.question) for e in examples], type=table.schema.field("prompt").type)
    with atomic_path(Path(dst)) as tmp:
        pq.write_table(table.set_column(column, "prompt", prompts), tmp)
    return Path(dst)


def of_sources(examples: Sequence[QAExample], sources: Sequence[str], path: str | Path) -> list[QAExample]:
    """The examples whose data_source is in ``sources`` (all of them when ``sources`` is empty)."""
    if not sources:
        return list(examples)
    chosen = [example for example in examples if example.data_source in sources]
    if not chosen:
        present = sorted({example.data_source for example in examples})
        raise DataError(f"data.train_sources={list(sources)} selects no prompt of {path}; its sources: {present}")
    return chosen


def _example(row: dict[str, Any], prompt_style: str) -> QAExample:
    messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
    answers = [str(a) for a in row["reward_model"]["ground_truth"]["target"]]
    return QAExample(
        question=row.get("question") or _question_from_prompt(messages),
        prompt_messages=styled_messages(messages, prompt_style),
        golden_answers=answers,
        data_source=row["data_source"],
        index=int(row["extra_info"]["index"]),
    )


def _question_from_prompt(messages: list[dict[str, str]]) -> str:
    # Files without a question column still hold it at the end of the template.
    content = messages[-1]["content"]
    return content.rsplit("Question: ", 1)[-1].strip()
