"""Prompts, corpora and train/test splits in Search-R1's formats.

``ensure_data(data_cfg)`` is what a run calls first: it builds the synthetic encyclopedia at the
config's paths when they are missing, and for real data says which command makes a missing file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from searchr1.data.errors import DataError

log = logging.getLogger(__name__)

__all__ = ["DataError", "ensure_data"]


def ensure_data(data_cfg) -> None:
    """Make sure ``data_cfg.train_path``, ``test_path`` and ``corpus_path`` exist.

    Synthetic data is generated (a second or two) when any file is missing; every file is
    written to a temporary name and renamed, so concurrent runs never read a partial file and
    the same seed always gives the same bytes. Real data is never fetched here: a missing file
    raises a one-line ``DataError`` naming it and the ``searchr1-data`` command that makes it.
    """
    paths = {key: Path(getattr(data_cfg, key)).expanduser() for key in ("train_path", "test_path", "corpus_path")}
    missing = [key for key, path in paths.items() if not path.is_file()]
    if not missing:
        return
    if data_cfg.name == "synthetic":
        _generate_synthetic(data_cfg, paths)
        return
    key = missing[0]
    raise DataError(f"data.{key}={paths[key]} does not exist; make it with: {_maker_command(key, paths[key])}")


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
