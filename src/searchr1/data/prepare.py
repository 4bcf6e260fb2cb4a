"""Search-R1's NQ + HotpotQA training parquet and its seven-dataset test merge, from FlashRAG files.

The source is the Hugging Face dataset ``RUC-NLPIR/FlashRAG_datasets`` or a local copy of it. Both
have the hub's layout: ``<dataset>/<split>.jsonl`` with one ``{"id", "question", "golden_answers",
...}`` object per line. The output matches Search-R1's ``qa_search_train_merge.py`` and
``qa_search_test_merge.py``:

- ``train.parquet``: the ``train`` split of nq then hotpotqa, ``extra_info.split = "train"``;
- ``test.parquet``: per dataset, ``test`` if present, else ``dev``, else ``train``, concatenated in
  the order nq, triviaqa, popqa, hotpotqa, 2wikimultihopqa, musique, bamboogle, all labelled
  ``extra_info.split = "test"`` (as the original does, whichever split was used);
- ``extra_info.index`` counts rows within each source dataset.

Every input file is checked before anything is written, and both outputs are written to temporary
names and renamed only when both are complete: a bad input leaves no output behind.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from searchr1.data.dataset import SCHEMA, make_row
from searchr1.data.errors import DataError
from searchr1.data.files import atomic_path

log = logging.getLogger(__name__)

HUB_REPO = "RUC-NLPIR/FlashRAG_datasets"
TRAIN_SOURCES = ("nq", "hotpotqa")
TEST_SOURCES = ("nq", "triviaqa", "popqa", "hotpotqa", "2wikimultihopqa", "musique", "bamboogle")
TEST_SPLIT_PREFERENCE = ("test", "dev", "train")
_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class SourceFile:
    data_source: str
    split: str
    path: Path


# --------------------------------------------------------------------------- choosing files
def train_files(root: Path, sources: Sequence[str]) -> list[SourceFile]:
    files = [SourceFile(name, "train", root / name / "train.jsonl") for name in sources]
    for file in files:
        if not file.path.is_file():
            raise DataError(f"missing input file {file.path} (the {file.data_source} train split)")
    return files


def test_files(root: Path, sources: Sequence[str]) -> list[SourceFile]:
    files = []
    for name in sources:
        present = [split for split in TEST_SPLIT_PREFERENCE if (root / name / f"{split}.jsonl").is_file()]
        if not present:
            raise DataError(
                f"missing input file {root / name}/test.jsonl (nor dev.jsonl or train.jsonl) for the {name} test split"
            )
        files.append(SourceFile(name, present[0], root / name / f"{present[0]}.jsonl"))
    return files


# --------------------------------------------------------------------------- reading
def _records(file: SourceFile) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line, with a one-line error for a bad one."""
    with open(file.path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{file.path}:{line_no}: not valid JSON ({exc.msg})") from None
            yield line_no, record


def _rows(file: SourceFile, out_split: str) -> Iterator[dict]:
    for index, (line_no, record) in enumerate(_records(file)):
        question, answers = _checked(record, file, line_no)
        yield make_row(
            row_id=str(record.get("id", index)),
            question=question,
            golden_answers=answers,
            data_source=file.data_source,
            split=out_split,
            index=index,
        )


def _checked(record: object, file: SourceFile, line_no: int) -> tuple[str, list[str]]:
    where = f"{file.path}:{line_no}"
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    question, answers = record.get("question"), record.get("golden_answers")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: 'question' must be a non-empty string")
    if not isinstance(answers, list) or not answers or any(isinstance(a, (dict, list)) for a in answers):
        raise DataError(f"{where}: 'golden_answers' must be a non-empty list of strings")
    return question, [str(a) for a in answers]


def _write(files: list[SourceFile], out_split: str, tmp: Path) -> int:
    """Stream rows into ``tmp`` in batches (the train merge is ~170k rows); returns the row count."""
    count = 0
    with pq.ParquetWriter(tmp, SCHEMA) as writer:
        for file in files:
            batch: list[dict] = []
            for row in _rows(file, out_split):
                batch.append(row)
                if len(batch) == _BATCH_ROWS:
                    writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
                    count, batch = count + len(batch), []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
                count += len(batch)
            log.info("%s: %s/%s.jsonl", out_split, file.data_source, file.split)
    return count


# --------------------------------------------------------------------------- entry points
def prepare(
    root: Path,
    out_dir: Path,
    *,
    train_sources: Sequence[str] = TRAIN_SOURCES,
    test_sources: Sequence[str] = TEST_SOURCES,
) -> dict[str, int]:
    """Write ``train.parquet`` and ``test.parquet`` under ``out_dir``; returns row counts."""
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise DataError(f"source directory {root} does not exist")
    plan = {"train": train_files(root, train_sources), "test": test_files(root, test_sources)}
    created = not out_dir.exists()
    counts: dict[str, int] = {}
    try:
        with ExitStack() as stack:
            # Both temp files are renamed only when the block exits cleanly, after both are written.
            for split, files in plan.items():
                tmp = stack.enter_context(atomic_path(out_dir / f"{split}.parquet"))
                counts[split] = _write(files, split, tmp)
    except BaseException:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return counts


def hub_snapshot(
    *,
    revision: str | None = None,
    train_sources: Sequence[str] = TRAIN_SOURCES,
    test_sources: Sequence[str] = TEST_SOURCES,
) -> Path:
    """Download just the FlashRAG files the merges read; returns a directory in the hub's layout."""
    try:
        from huggingface_hub import list_repo_files, snapshot_download
    except ImportError:
        raise DataError(
            "--source hub needs huggingface_hub (pip install huggingface_hub); "
            "or pass a local copy of the hub files as --source DIR"
        ) from None
    try:
        available = set(list_repo_files(HUB_REPO, repo_type="dataset", revision=revision))
        wanted = [f"{name}/train.jsonl" for name in train_sources]
        for name in test_sources:
            wanted += [
                f"{name}/{split}.jsonl" for split in TEST_SPLIT_PREFERENCE if f"{name}/{split}.jsonl" in available
            ][:1]
        path = snapshot_download(HUB_REPO, repo_type="dataset", revision=revision, allow_patterns=wanted)
    except Exception as exc:  # noqa: BLE001 - offline mode, HTTP and auth errors: all end the command the same way
        message = " ".join(str(exc).split())
        raise DataError(f"could not fetch {HUB_REPO} from the hub: {type(exc).__name__}: {message}") from None
    return Path(path)
