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
    """One shared cache per test session so generated data and indexes are built once. Model and
    tokenizer conversions (a minute each, read-only once made) stay in the user's own cache root."""
    if "SEARCHR1_CACHE" not in os.environ:
        from searchr1.paths import cache_root

        user_root = cache_root()
        session_root = tmp_path_factory.mktemp("searchr1-cache")
        for kept in ("models", "tokenizers"):
            (user_root / kept).mkdir(parents=True, exist_ok=True)
            (session_root / kept).symlink_to(user_root / kept, target_is_directory=True)
        os.environ["SEARCHR1_CACHE"] = str(session_root)
    yield
