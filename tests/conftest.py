"""Suite-wide guards: nothing reaches a hub or the W&B cloud, generated data goes to a temp cache."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _searchr1_cache(tmp_path_factory):
    """One shared cache per test session so generated data and indexes are built once."""
    if "SEARCHR1_CACHE" not in os.environ:
        os.environ["SEARCHR1_CACHE"] = str(tmp_path_factory.mktemp("searchr1-cache"))
    yield
