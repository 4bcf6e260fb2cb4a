"""Checkpoints of the embedded trainer: trainable weights, optimizer, step, RNG states, data position.

Each checkpoint is one file written under a temporary name and renamed, so a run killed while
saving leaves the previous checkpoint intact; ``LATEST`` names the newest complete one. Only the
trainable parameters are saved (all weights, or just the LoRA adapters): the frozen rest is the
model we load anyway.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

log = logging.getLogger(__name__)

LATEST = "LATEST"


def save_checkpoint(directory: Path, step: int, model: Any, optimizer: Any, sampler_state: dict, *,
                    keep: int = 1) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:06d}.pt"
    state = {
        "step": step,
        "trainable": {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "sampler": dict(sampler_state),
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
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
    return torch.load(directory / marker.read_text().strip(), map_location="cpu", weights_only=False)


def restore(state: dict, model: Any, optimizer: Any) -> None:
    """Put weights, optimizer moments and RNG states back; the caller restores the data position."""
    params = dict(model.named_parameters())
    missing = sorted(set(state["trainable"]) - set(params))
    if missing:
        raise ValueError(f"checkpoint holds parameters this model lacks (different trainer.lora_rank?): {missing[:3]}")
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    torch.set_rng_state(state["rng"]["torch"])


def _prune(directory: Path, keep: int) -> None:
    for old in sorted(directory.glob("step_*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
