"""Random access to a Search-R1 JSONL corpus without loading it into Python objects.

A corpus row is ``{"id": ..., "contents": "\\"Title\\"\\ntext"}``; its row number is its index
label (FAISS ids in Search-R1's ``e5_Flat.index`` are row numbers). We keep one int64 byte
offset per row in ``<corpus>.offsets.npy`` and read rows by slicing a memory map of the file.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import orjson

_READ_CHUNK = 16 << 20


def offsets_path(corpus_path: Path) -> Path:
    return corpus_path.with_name(corpus_path.name + ".offsets.npy")


def _scan_offsets(corpus_path: Path, show_progress: bool) -> np.ndarray:
    """Start offset of every non-empty line, plus the file size as a final sentinel."""
    from tqdm import tqdm

    size = corpus_path.stat().st_size
    parts: list[np.ndarray] = []
    with (
        open(corpus_path, "rb") as f,
        tqdm(total=size, unit="B", unit_scale=True, desc="corpus offsets", disable=not show_progress) as bar,
    ):
        base, line_start_pending = 0, True
        while chunk := f.read(_READ_CHUNK):
            buf = np.frombuffer(chunk, dtype=np.uint8)
            starts = np.flatnonzero(buf == ord("\n")) + 1 + base
            if line_start_pending:
                starts = np.concatenate(([base], starts))
            line_start_pending = False
            parts.append(starts)
            base += len(chunk)
            bar.update(len(chunk))
    starts = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    starts = starts[starts < size].astype(np.int64)
    # Drop blank lines so that row numbers match a JSONL reader's (Search-R1 uses `datasets`).
    ends = np.append(starts[1:], size)
    lengths = ends - starts
    with open(corpus_path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        blank = [i for i in np.flatnonzero(lengths <= 2) if not mm[starts[i] : ends[i]].strip()]
    starts = np.delete(starts, blank)
    return np.append(starts, size).astype(np.int64)


def load_offsets(corpus_path: Path, show_progress: bool = False) -> np.ndarray:
    """Cached offsets; rebuilt (atomically) when missing or written for another file size."""
    path = offsets_path(corpus_path)
    size = corpus_path.stat().st_size
    if path.exists():
        offsets = np.load(path, mmap_mode="r")
        if len(offsets) and int(offsets[-1]) == size:
            return offsets
    offsets = _scan_offsets(corpus_path, show_progress)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, offsets)
    os.replace(tmp, path)
    return offsets


class Corpus:
    """Row-number access to passages; ``doc(i)`` returns the row as Search-R1 serves it."""

    def __init__(self, path: str | os.PathLike, show_progress: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"corpus not found: {self.path}")
        self._offsets = load_offsets(self.path, show_progress)
        self._file = open(self.path, "rb")
        size = self.path.stat().st_size
        self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def raw(self, i: int) -> bytes:
        return self._mm[int(self._offsets[i]) : int(self._offsets[i + 1])]

    def row(self, i: int) -> dict:
        try:
            row = orjson.loads(self.raw(i))
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"corpus {self.path} row {i} is not valid JSON: {exc}") from None
        if not isinstance(row, dict) or not isinstance(row.get("contents"), str):
            raise ValueError(f"corpus {self.path} row {i} has no 'contents' string (Search-R1 format: id, contents)")
        return row

    def doc(self, i: int) -> dict:
        row = self.row(i)
        # Every hit carries an id; rows without one are named by their row number.
        row.setdefault("id", str(i))
        return row

    def docs(self, ids: Sequence[int]) -> list[dict]:
        return [self.doc(i) for i in ids]

    def iter_contents(self, batch_size: int, show_progress: bool = True, desc: str = "") -> Iterator[list[str]]:
        """Stream ``contents`` in order, ``batch_size`` rows at a time, with a progress bar."""
        from tqdm import tqdm

        with tqdm(total=len(self), unit="doc", desc=desc or self.path.name, disable=not show_progress) as bar:
            for start in range(0, len(self), batch_size):
                stop = min(start + batch_size, len(self))
                batch = [self.row(i)["contents"] for i in range(start, stop)]
                bar.update(len(batch))
                yield batch

    def close(self) -> None:
        if isinstance(self._mm, mmap.mmap):
            self._mm.close()
        self._file.close()
