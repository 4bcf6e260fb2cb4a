"""Prompts, corpora and train/test splits in Search-R1's formats.

``ensure_data(data_cfg)`` is what a run calls first: it builds the synthetic encyclopedia at the
config's paths when they are missing, and for real data says which command makes a missing file.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Optional

from searchr1.data.errors import DataError

log = logging.getLogger(__name__)

__all__ = ["DATA_KEYS", "DataError", "data_paths", "ensure_data", "synthetic_set_problem"]

DATA_KEYS = ("train_path", "test_path", "corpus_path")


def ensure_data(data_cfg) -> None:
    """Make sure ``data_cfg.train_path``, ``test_path`` and ``corpus_path`` exist.

    A synthetic set missing as a whole is generated (a second or two) into a temporary dir and moved
    into place once complete, so no run ever sees half a set and the same seed always gives the same
    bytes; a set that cannot be generated whole is a one-line ``DataError`` (:func:`synthetic_set_problem`).
    Real data is never fetched here: a missing file raises a one-line ``DataError`` naming it and the
    ``searchr1-data`` command that makes it.
    """
    paths = data_paths(data_cfg)
    missing = [key for key, path in paths.items() if not path.is_file()]
    if not missing:
        return
    if data_cfg.name == "synthetic":
        problem = synthetic_set_problem(paths)
        if problem:
            raise DataError(problem)
        _generate_synthetic(data_cfg, paths)
        return
    key = missing[0]
    raise DataError(f"data.{key}={paths[key]} does not exist; make it with: {_maker_command(key, paths[key])}")


def data_paths(data_cfg) -> dict[str, Path]:
    """The data files by their key: train_path, test_path and corpus_path."""
    return {key: Path(getattr(data_cfg, key)).expanduser() for key in DATA_KEYS}


def synthetic_set_problem(paths: dict[str, Path]) -> Optional[str]:
    """None when a synthetic set is complete at ``paths`` or can be generated there as a whole; else one
    line naming the key to fix, before anything is written. A set is generated whole and into one dir:
    one file missing beside the others is a typo or a damaged set (regenerating would overwrite the
    others), and paths in different dirs are a mistyped path, which would scatter a set over two dirs
    (the default cache then held two files of a set, refused by every later run)."""
    missing = [key for key, path in paths.items() if not path.is_file()]
    if not missing:
        return None
    if len(missing) < len(paths):
        present = next(key for key in paths if key not in missing)
        return (
            f"data.{missing[0]}={paths[missing[0]]}: file not found, but data.{present} exists; synthetic data is "
            "generated only as a whole set (fix the path, or point all three paths at a new dir)"
        )
    dirs = Counter(path.absolute().parent for path in paths.values())
    if len(dirs) == 1:
        return None
    common = dirs.most_common(1)[0][0]
    key = next(key for key, path in paths.items() if path.absolute().parent != common)
    other = next(key for key, path in paths.items() if path.absolute().parent == common)
    return (
        f"data.{key}={paths[key]}: file not found, and not in the dir of data.{other} ({common}); synthetic "
        "data is generated only as a whole set in one dir (fix the path, or point all three paths at one new dir)"
    )


def _generate_synthetic(data_cfg, paths: dict[str, Path]) -> None:
    from searchr1.data.synthetic import generate, write_encyclopedia

    start = time.perf_counter()
    book = generate(data_cfg.seed, data_cfg.num_entities, data_cfg.questions)
    write_encyclopedia(book, **paths)
    log.info(
        "generated synthetic data (data.seed=%d, data.num_entities=%d, data.questions=%s): %d passages, "
        "%d train / %d test questions in %.1fs at %s",
        data_cfg.seed,
        data_cfg.num_entities,
        data_cfg.questions,
        len(book.entities),
        len(book.train),
        len(book.test),
        time.perf_counter() - start,
        paths["train_path"].parent,
    )


def _maker_command(key: str, path: Path) -> str:
    if key == "corpus_path":
        return f"searchr1-data download --out {path.parent}"
    return f"searchr1-data prepare --source hub --out {path.parent}"
