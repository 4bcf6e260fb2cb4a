"""Per-dataset test files, for engines that report eval metrics per file (Miles: ``eval/<name>``)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from searchr1.data.files import atomic_path


def split_by_source(path: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write one parquet per ``data_source`` of a Search-R1 split; returns {data_source: path}.

    Miles logs ``eval/<name>`` per ``--eval-prompt-data name path`` pair, so passing these files gives
    the paper's per-dataset columns instead of one mixed number. Rows keep their order and schema.
    """
    table = pq.read_table(path)
    out_dir = Path(out_dir)
    written = {}
    for source in sorted(set(table.column("data_source").to_pylist())):
        target = out_dir / f"{source}.parquet"
        with atomic_path(target) as tmp:
            pq.write_table(table.filter(pc.equal(table["data_source"], source)), tmp)
        written[source] = target
    return written
