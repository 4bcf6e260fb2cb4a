"""Atomic file writes, so a reader (or a concurrent writer) never sees a half-written file or set."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temp file lives in the same directory so ``os.replace`` is a rename on one filesystem,
    which POSIX makes atomic. Its name is unique per process and call, so two processes that
    generate the same file at once cannot clobber each other's partial output.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(directory: Path) -> Iterator[Path]:
    """Yield a fresh temporary dir; when the block succeeds, what it wrote appears in ``directory``. A
    ``directory`` that does not exist yet is the temporary dir (made beside it) renamed, so its files
    appear together; into an existing dir (the temporary dir is made inside it) each file is renamed in
    turn. A failure leaves ``directory`` as it was; a kill leaves at most a hidden temporary dir."""
    name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    existed = directory.is_dir()
    tmp = directory / f".set.{name}" if existed else directory.with_name(f".{directory.name}.{name}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if existed or not _renamed(tmp, directory):
            for path in sorted(tmp.iterdir()):
                os.replace(path, directory / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _renamed(tmp: Path, directory: Path) -> bool:
    try:
        os.rename(tmp, directory)
    except OSError:  # another writer renamed its copy of the set in first
        return False
    return True
