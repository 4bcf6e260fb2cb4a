"""Read W&B offline run files (``run-<id>.wandb``) back into protobuf records, for tests.

The file is W&B's LevelDB-style log: a 7-byte header (``:W&B``, magic 0xBEE1, version), then 32 KiB
blocks of chunks, each ``crc32 (4) | length (2, LE) | type (1)`` + payload; a record spans chunks of
type FIRST, MIDDLE.., LAST, or is one FULL chunk; a block tail shorter than a chunk header is padding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

_HEADER = 7
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> list[pb.Record]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    out, pending, pos = [], b"", _HEADER
    while pos + _HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _HEADER:
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        payload = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 0 and length == 0:
            break  # zero padding past the last record
        pending = payload if kind in (_FULL, _FIRST) else pending + payload
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


@dataclass(frozen=True)
class OfflineRun:
    run_id: str
    group: str
    name: str
    config: dict[str, str]
    """Top-level config key -> its JSON text, as W&B stores it."""
    finished: bool
    """The run was closed with ``finish()`` (its file ends with an exit record)."""


def offline_runs(root: Path) -> list[OfflineRun]:
    """Every offline run below ``root`` (its run record: id, group, display name, config)."""
    runs = []
    for path in sorted(Path(root).rglob("run-*.wandb")):
        kinds = [(r.WhichOneof("record_type"), r) for r in records(path)]
        run = next(r.run for kind, r in kinds if kind == "run")
        config = {item.key or "/".join(item.nested_key): item.value_json for item in run.config.update}
        runs.append(
            OfflineRun(
                run_id=run.run_id,
                group=run.run_group,
                name=run.display_name,
                config=config,
                finished=any(kind == "exit" for kind, _ in kinds),
            )
        )
    return runs
