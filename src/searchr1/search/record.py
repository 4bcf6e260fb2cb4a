"""Record every search of a run to JSONL, and replay such a file as an offline backend.

A Google-backed run recorded once can be re-run exactly without network or credits: the replay
serves the same passages, and the same failures, for each (query, topk) in the recorded order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from searchr1.config.checks import ConfigError
from searchr1.config.secrets import redact
from searchr1.search.base import Passage, SearchResult
from searchr1.search.fetcher import SearchError

RECORD_FILE = "search_record.jsonl"


class Recorder:
    """Appends one JSON line per search call; flushed per line so a crashed run keeps its record.
    Error texts are redacted: an upstream may echo the request (and its API key header) in an error."""

    def __init__(self, path: Path, backend: str, secrets: Sequence[str] = ()) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._backend = backend
        self._secrets = tuple(secrets)
        self._file = path.open("a", encoding="utf-8")

    def write(self, result: SearchResult, topk: int) -> None:
        line = {
            "backend": self._backend,
            "query": result.query,
            "topk": topk,
            "failed": result.failed,
            "error": redact(result.error, self._secrets) if result.error else result.error,
            "passages": [{"contents": p.contents, "id": p.id, "score": p.score} for p in result.passages],
        }
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ReplayFetcher:
    """Serves a recorded file; the i-th call for a key gets the i-th recorded answer (the last repeats)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(
                f"search.replay_path={str(path)!r} does not exist; allowed: a {RECORD_FILE} from a recorded run"
            )
        self.path = path
        self._records: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            record = _parse_line(line, path, number)
            self._records[_key_of(record)].append(record)
        self._served: dict[tuple[str, int], int] = defaultdict(int)

    async def fetch(self, query: str, topk: int) -> tuple[Passage, ...]:
        answers = self._records.get((query, topk))
        if not answers:
            raise SearchError(f"query not in replay file {self.path}: {query!r} (topk={topk})")
        index = min(self._served[(query, topk)], len(answers) - 1)
        self._served[(query, topk)] += 1
        record = answers[index]
        if record["failed"]:
            raise SearchError(record["error"] or "search failed (recorded)")
        return tuple(Passage(contents=p["contents"], id=p.get("id"), score=p.get("score")) for p in record["passages"])


def _parse_line(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
        _key_of(record)
        record.setdefault("failed", False)
        record.setdefault("passages", [])
        return record
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"search.replay_path: line {number} of {path} is not a search record") from None


def _key_of(record: dict[str, Any]) -> tuple[str, int]:
    return str(record["query"]), int(record["topk"])
