"""Rewarded samples as warm-start data: rejection sampling / expert iteration over our own sample files.

``rollouts.jsonl`` (the embedded trainer, every step) and ``eval_samples.jsonl`` (``searchr1-eval``,
embedded or through SGLang) both carry each sample's token ids and loss mask as rolled out, so a kept
sample trains on exactly the tokens the engine produced, with observations masked as in RL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from searchr1.data.errors import DataError
from searchr1.rollout.trajectory import Trajectory

TOKEN_KEYS = ("prompt_ids", "response_ids", "loss_mask")


def rewarded_trajectories(paths: Iterable[str | Path], min_exact_match: float) -> list[Trajectory]:
    """Every sample in ``paths`` whose exact match is at least ``min_exact_match``, in file order."""
    kept = []
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"sft.samples_paths: {path} does not exist")
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [key for key in TOKEN_KEYS if key not in row]
            if missing:
                raise DataError(
                    f"sft.samples_paths: {path}:{number} has no {', '.join(missing)} "
                    "(written by a searchr1 older than its token records; re-run to get them)"
                )
            if row.get("exact_match", 0.0) >= min_exact_match and any(row["loss_mask"]):
                kept.append(
                    Trajectory(
                        prompt_ids=row["prompt_ids"],
                        response_ids=row["response_ids"],
                        loss_mask=row["loss_mask"],
                        response_text=row.get("response", ""),
                    )
                )
    return kept
