"""The run dir's ``metrics.jsonl``: one JSON object per step, ``{"step": N, "key": value, ...}``.

Both trainers write it through ``MetricsWriter`` (the local trainer's Tracker, and the Miles hooks inside
a Ray actor, which is why this module needs nothing beyond the standard library), and reports read it
through ``read_records``. NaN and infinities are written as null; a resumed run's redone steps replace
the lines the interrupted run left for them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from searchr1.paths import RunDir

HEALTH_FIRED_PREFIX = "health/fired/"
"""``health/fired/<rule>`` = 1 on the steps where a training-health rule fired (searchr1.health); reports mark them."""


class MetricsWriter:
    """Appends one line per step to ``path``.

    ``done_steps`` is how far the run got before this process: lines after it are dropped now (0 starts
    the file over). None means the writer cannot know (Miles resumes inside its own actors): the first
    step appended decides, and that step's line and every later one are dropped before it is written.
    """

    def __init__(self, path: Path, *, done_steps: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._first_step_decides = done_steps is None
        if done_steps is not None:
            drop_steps_after(self.path, done_steps)

    def append(self, step: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``metrics`` for ``step``; returns the record as written (JSON-safe scalars)."""
        if self._first_step_decides:
            self._first_step_decides = False
            _keep_lines(self.path, lambda line_step: line_step < step)
        record = {"step": step, **{key: json_scalar(value) for key, value in metrics.items()}}
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, allow_nan=False) + "\n")
        return record


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every step record in file order; a missing file is empty. Lines that are not a JSON object with
    an integer step are skipped (a run killed mid-write leaves a partial last line)."""
    path = Path(path)
    if not path.exists():
        return []
    return [record for line in path.read_text(encoding="utf-8").splitlines() if (record := _record(line))]


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """``read_records`` of a run dir's ``metrics.jsonl``."""
    return read_records(Path(run_dir) / RunDir.METRICS)


def drop_steps_after(path: Path, step: int) -> None:
    """Keep the lines of steps up to ``step`` (a checkpoint's) in a step-keyed JSONL file; step 0 or less
    removes the file (a fresh start)."""
    if step <= 0:
        Path(path).unlink(missing_ok=True)
        return
    _keep_lines(Path(path), lambda line_step: line_step <= step)


def json_scalar(value: Any) -> Any:
    """JSON-safe scalars: tensors and numpy numbers become Python numbers, NaN and infinities None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _keep_lines(path: Path, keep: Callable[[int], bool]) -> None:
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if (record := _record(line)) and keep(record["step"])
    ]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        return None
    return record
