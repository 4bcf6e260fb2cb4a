"""Load the policy model (and its tokenizer) offline, dequantizing a GGUF file once.

Dequantizing SmolLM2's GGUF takes a minute on a busy CPU; the float32 result is saved once as an
ordinary Hugging Face checkpoint under the cache root, so later runs load it in under a second.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from searchr1.config.schema import ModelConfig
from searchr1.models.cache import converted_once, model_cache_dir
from searchr1.models.tokenizer import load_tokenizer, resolve_checkpoint

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


def torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def gguf_file_of(model_cfg: ModelConfig) -> Optional[str]:
    """The GGUF file to load: the configured one, else the checkpoint dir's only ``.gguf`` (None if none)."""
    if model_cfg.gguf_file:
        return model_cfg.gguf_file
    directory = Path(resolve_checkpoint(model_cfg.hf_checkpoint))
    if not directory.is_dir():
        return None
    found = sorted(p.name for p in directory.glob("*.gguf"))
    if len(found) > 1:
        raise ValueError(f"model.hf_checkpoint={model_cfg.hf_checkpoint} holds several GGUF files {found}; "
                         "pick one with model.gguf_file=<name>")
    return found[0] if found else None


def load_model(model_cfg: ModelConfig) -> Any:
    """A float32 ``AutoModelForCausalLM`` in train mode, from an HF dir or a (cached, dequantized) GGUF."""
    from transformers import AutoModelForCausalLM

    gguf_file = gguf_file_of(model_cfg)
    path = resolve_checkpoint(model_cfg.hf_checkpoint)
    if gguf_file is not None:
        path = str(_dequantized_checkpoint(Path(path) / gguf_file))
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype("float32"))


def load_policy_tokenizer(model_cfg: ModelConfig) -> Any:
    tokenizer = load_tokenizer(model_cfg.hf_checkpoint, gguf_file_of(model_cfg))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _dequantized_checkpoint(gguf_path: Path) -> Path:
    """Path of an HF checkpoint holding the GGUF's dequantized weights, making it on first use."""
    from transformers import AutoModelForCausalLM

    def dequantize(dest: Path) -> None:
        log.info("dequantizing %s once into %s (later runs load the cached copy)", gguf_path.name, model_cache_dir())
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                     dtype=torch_dtype("float32"))
        # The weights are plain float32 now; dropping the GGUF marker makes the model serializable.
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        model.save_pretrained(dest)

    return converted_once(gguf_path, model_cache_dir(), "config.json", dequantize)
