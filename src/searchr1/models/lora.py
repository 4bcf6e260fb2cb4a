"""LoRA adapters on the policy, and copying trained weights into the engine's copy."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator


@contextlib.contextmanager
def building_peft_model() -> Iterator[None]:
    """Around PEFT wrapping a model: PEFT 0.21's PeftModel reads the model's ``is_gradient_checkpointing``,
    which transformers 5 deprecates with a FutureWarning, printed by every run. Only that warning is ignored."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def with_lora(model: Any, rank: int) -> Any:
    """Wrap ``model`` with LoRA adapters on every attention and MLP projection (rank 0: unchanged)."""
    if rank <= 0:
        return model
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    with building_peft_model():
        return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets))


def sync_trainable(source: Any, target: Any) -> None:
    """Copy ``source``'s trainable parameters into ``target`` (a lower-precision engine copy)."""
    import torch

    targets = dict(target.named_parameters())
    with torch.no_grad():
        for name, param in source.named_parameters():
            if param.requires_grad:
                targets[name].copy_(param)
