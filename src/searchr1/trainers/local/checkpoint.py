"""Checkpoints of the embedded trainer: trainable weights, optimizer, step, RNG states, data position.

Each checkpoint is one file written under a temporary name and renamed, so a run killed while
saving leaves the previous checkpoint intact; ``LATEST`` names the newest complete one. Only the
trainable parameters are saved (all weights, or just the LoRA adapters): the frozen rest is the
model we load anyway.

Checkpoints load with ``torch.load(weights_only=True)``: a checkpoint dir from elsewhere can hold
tensors, numbers, strings and containers, never code. RNG states are stored in those forms.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from searchr1.models.checkpoints import (
    LATEST,
    STEP_KEY,
    TRAINABLE_KEY,
    UnsafeCheckpointError,
    checkpoint_name,
    read_checkpoint,
    saved_checkpoints,
)

log = logging.getLogger(__name__)

# UnsafeCheckpointError is re-exported: the reader raises it, callers of load_latest catch it from here.
__all__ = ["LATEST", "UnsafeCheckpointError", "load_latest", "restore", "rng_state", "save_checkpoint", "set_rng_state"]


def save_checkpoint(
    directory: Path, step: int, model: Any, optimizer: Any, sampler_state: dict, *, keep: int = 1
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / checkpoint_name(step)
    state = {
        STEP_KEY: step,
        TRAINABLE_KEY: {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "sampler": dict(sampler_state),
        "rng": rng_state(),
    }
    partial = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, partial)
    partial.replace(path)
    (directory / (LATEST + ".tmp")).write_text(path.name)
    (directory / (LATEST + ".tmp")).replace(directory / LATEST)
    _prune(directory, keep)
    return path


def load_latest(directory: Path) -> Optional[dict]:
    """The newest checkpoint's state dict, or None when the directory holds none."""
    marker = directory / LATEST
    if not marker.exists():
        return None
    return read_checkpoint(directory / marker.read_text().strip(), "trainer.resume=true")


def restore(state: dict, model: Any, optimizer: Any) -> None:
    """Put weights, optimizer moments and RNG states back; the caller restores the data position."""
    params = dict(model.named_parameters())
    missing = sorted(set(state[TRAINABLE_KEY]) - set(params))
    if missing:
        raise ValueError(f"checkpoint holds parameters this model lacks (different trainer.lora_rank?): {missing[:3]}")
    with torch.no_grad():
        for name, value in state[TRAINABLE_KEY].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as tensors, numbers and lists (what weights_only loads)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])


def _prune(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (0 keeps every one)."""
    if keep <= 0:
        return
    for old in list(saved_checkpoints(directory).values())[:-keep]:
        old.unlink(missing_ok=True)
