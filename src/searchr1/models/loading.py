"""Load the policy model (and its tokenizer) offline, dequantizing a GGUF file once, optionally from a
warm start.

Dequantizing SmolLM2's GGUF takes a minute on a busy CPU; the float32 result is saved once as an
ordinary Hugging Face checkpoint under the cache root, so later runs load it in under a second.

A warm start (``trainer.init_from``; ``eval.checkpoint`` takes these dirs too) is a directory that is
either a PEFT LoRA adapter for the configured base model (what ``save_pretrained`` of a PEFT model writes) or a whole
Hugging Face model directory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from searchr1.config.checks import ConfigError
from searchr1.config.schema import ModelConfig
from searchr1.models.cache import converted_once, model_cache_dir
from searchr1.models.lora import building_peft_model, with_fused_linears, with_lora
from searchr1.models.tokenizer import load_tokenizer, resolve_checkpoint

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODEL_CONFIG = "config.json"


@dataclass(frozen=True)
class WarmStart:
    """A checked ``init_from`` directory."""

    path: Path
    kind: Literal["adapter", "model"]
    """``adapter``: a PEFT LoRA adapter for the configured base model; ``model``: a whole HF model dir."""
    rank: int
    """The adapter's LoRA rank (0 for a whole model)."""


def check_warm_start(init_from: str, lora_rank: int, key: str) -> WarmStart:
    """What ``init_from`` holds, or a one-line ConfigError naming ``key`` (without loading any weights)."""
    try:
        path = Path(resolve_checkpoint(init_from)).expanduser()
    except FileNotFoundError as exc:
        raise ConfigError(f"{key}={init_from!r}: {exc}") from None
    if not path.is_dir():
        raise ConfigError(f"{key}={init_from!r}: no such directory ({path})")
    if (path / ADAPTER_CONFIG).is_file():
        return _adapter(path, init_from, lora_rank, key)
    if (path / MODEL_CONFIG).is_file():
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise ConfigError(f"{key}={init_from!r} holds {MODEL_CONFIG} but no weights (*.safetensors, *.bin)")
        return WarmStart(path=path, kind="model", rank=0)
    raise ConfigError(
        f"{key}={init_from!r} is neither a LoRA adapter dir ({ADAPTER_CONFIG} + {ADAPTER_WEIGHTS}) "
        f"nor a Hugging Face model dir ({MODEL_CONFIG} + weights)"
    )


def _adapter(path: Path, init_from: str, lora_rank: int, key: str) -> WarmStart:
    if not (path / ADAPTER_WEIGHTS).is_file():
        raise ConfigError(f"{key}={init_from!r} holds {ADAPTER_CONFIG} but no {ADAPTER_WEIGHTS}")
    try:
        rank = int(json.loads((path / ADAPTER_CONFIG).read_text())["r"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{key}={init_from!r}: {ADAPTER_CONFIG} is malformed ({type(exc).__name__}: {exc})") from None
    # Continuing a LoRA needs the same rank; rank 0 merges the adapter and trains every weight.
    if lora_rank not in (0, rank):
        raise ConfigError(
            f"{key}={init_from!r} is a rank-{rank} LoRA adapter but trainer.lora_rank={lora_rank}; "
            f"use trainer.lora_rank={rank} (or 0 to merge it and train all weights)"
        )
    return WarmStart(path=path, kind="adapter", rank=rank)


def load_policy(
    model_cfg: ModelConfig,
    init_from: Optional[str],
    lora_rank: int,
    *,
    key: str = "trainer.init_from",
    gradient_checkpointing: bool = False,
) -> Any:
    """The trainable float32 policy: the base model or a warm start, with LoRA adapters of ``lora_rank``.

    An adapter warm start keeps training the same adapter (``lora_rank`` equal to its rank), or is
    merged into the base weights when ``lora_rank`` is 0. A whole-model warm start replaces the base
    model; ``lora_rank`` then adds fresh adapters as usual.
    """
    policy = _load_policy(model_cfg, init_from, lora_rank, key)
    if gradient_checkpointing:
        checkpoint_layers(policy)
    return policy


def checkpoint_layers(model: Any) -> None:
    """Keep only each decoder layer's input for the backward and recompute the layer there.

    Activation memory then stops growing with the layer count (SmolLM2: 30 layers, ~4 GB for 1000
    response tokens without it) for one more forward pass. Only a model in train mode with gradients
    on checkpoints: the engine's generation (inference mode) keeps its KV cache as before.
    """
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    for layer in model.get_decoder().layers:
        # Transformers drops a checkpointed layer's KV cache, since a recompute would extend it twice; the
        # trainer's logprob pass hands the layers a read-only prompt cache (trainers/local/logprobs.py).
        layer._can_checkpoint_with_cache = True


def _load_policy(model_cfg: ModelConfig, init_from: Optional[str], lora_rank: int, key: str) -> Any:
    if init_from is None:
        return with_lora(load_model(model_cfg), lora_rank)
    start = check_warm_start(init_from, lora_rank, key)
    log.info("warm start from %s (%s=%s)", start.path, key, init_from)
    if start.kind == "model":
        from transformers import AutoModelForCausalLM

        return with_lora(AutoModelForCausalLM.from_pretrained(start.path, dtype=torch_dtype("float32")), lora_rank)
    from peft import LoraConfig, PeftModel

    base = load_model(model_cfg)
    config = with_fused_linears(LoraConfig.from_pretrained(str(start.path)))
    with building_peft_model():
        policy = PeftModel.from_pretrained(base, start.path, config=config, is_trainable=True)
    # Merging leaves the base weights frozen as PEFT had them; rank 0 trains them all.
    return policy.merge_and_unload().requires_grad_(True) if lora_rank == 0 else policy


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
        raise ValueError(
            f"model.hf_checkpoint={model_cfg.hf_checkpoint} holds several GGUF files {found}; "
            "pick one with model.gguf_file=<name>"
        )
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
    if model_cfg.chat_template:
        tokenizer.chat_template = Path(resolve_checkpoint(model_cfg.chat_template)).read_text()
    return tokenizer


def _dequantized_checkpoint(gguf_path: Path) -> Path:
    """Path of an HF checkpoint holding the GGUF's dequantized weights, making it on first use."""
    from transformers import AutoModelForCausalLM

    def dequantize(dest: Path) -> None:
        log.info("dequantizing %s once into %s (later runs load the cached copy)", gguf_path.name, model_cache_dir())
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch_dtype("float32")
        )
        # The weights are plain float32 now; dropping the GGUF marker makes the model serializable.
        model.hf_quantizer = None  # type: ignore[assignment]  # mypy reads the type from nn.Module.__getattr__
        model.config.__dict__.pop("quantization_config", None)
        model.save_pretrained(dest)

    return converted_once(gguf_path, model_cache_dir(), "config.json", dequantize)
