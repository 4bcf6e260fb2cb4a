"""OmegaConf resolvers for well-known locations, registered once behind one idempotent helper."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def cache_root() -> Path:
    """Generated artifacts (synthetic data, indexes): $SEARCHR1_CACHE or ~/.cache/searchr1."""
    return Path(os.environ.get("SEARCHR1_CACHE", Path.home() / ".cache" / "searchr1")).expanduser()


def data_root() -> Path:
    """Downloaded datasets and corpora: $SEARCHR1_DATA or ~/searchr1-data."""
    return Path(os.environ.get("SEARCHR1_DATA", Path.home() / "searchr1-data")).expanduser()


def register_resolvers() -> None:
    # replace=True keeps this idempotent across multirun jobs and test sessions.
    OmegaConf.register_new_resolver("searchr1_cache", lambda name: str(cache_root() / name), replace=True)
    OmegaConf.register_new_resolver("searchr1_data", lambda name: str(data_root() / name), replace=True)
