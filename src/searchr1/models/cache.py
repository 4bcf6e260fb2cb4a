"""Conversions made once and kept under the cache root (dequantized GGUF models, their tokenizers)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable

from searchr1.paths import cache_root


def tokenizer_cache_dir() -> Path:
    """Converted GGUF tokenizers: ``<cache root>/tokenizers``."""
    return cache_root() / "tokenizers"


def model_cache_dir() -> Path:
    """Dequantized GGUF checkpoints: ``<cache root>/models``."""
    return cache_root() / "models"


def converted_once(gguf_path: Path, cache_dir: Path, marker: str, convert: Callable[[Path], None]) -> Path:
    """The cached conversion of ``gguf_path`` (a dir holding ``marker``), made by ``convert(dest)`` once.

    Keyed by the file's path, size and mtime, so a changed GGUF converts again. Concurrent first uses
    race harmlessly: each converts into its own temp dir, the first rename wins, the others discard.
    """
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir / f"{gguf_path.stem}-{key}"
    if (cached / marker).exists():
        return cached
    partial = cached.with_name(cached.name + f".tmp{os.getpid()}")
    convert(partial)
    try:
        partial.rename(cached)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
    return cached
