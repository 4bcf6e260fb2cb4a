"""Where searchr1 keeps things: one cache root, the data root, and the run-dir file names reports read.

A leaf module (standard library only), so that the run, the trackers, the Miles hooks and the reports
can all name the same files without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

# The run-dir files reports read (and nothing else): written by every trainer.
RESOLVED_CONFIG_FILE = "resolved_config.yaml"
METRICS_FILE = "metrics.jsonl"


def cache_root() -> Path:
    """Everything searchr1 generates and keeps across runs, in sub-dirs: synthetic data and indexes at
    the top, dequantized models in ``models/``, converted tokenizers in ``tokenizers/``.

    ``$SEARCHR1_CACHE``, else ``$XDG_CACHE_HOME/searchr1``, else ``~/.cache/searchr1``.
    """
    override = os.environ.get("SEARCHR1_CACHE")
    if override:
        return Path(override).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "searchr1"


def data_root() -> Path:
    """Downloaded datasets and corpora: ``$SEARCHR1_DATA``, else ``~/searchr1-data``."""
    return Path(os.environ.get("SEARCHR1_DATA", Path.home() / "searchr1-data")).expanduser()


# What ``searchr1-eval eval.run=<run dir>`` writes into the evaluated run dir (reports read the JSON).
CHECKPOINT_EVAL_FILE = "checkpoint_eval.json"
CHECKPOINT_EVAL_PLOT = "checkpoint_eval.png"
