"""LoRA adapters on the policy, and copying trained weights into the engine's copy."""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Any, Iterator, Optional


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
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets)
    with building_peft_model():
        return get_peft_model(model, with_fused_linears(config))


def with_fused_linears(config: Any) -> Any:
    """``config`` (a PEFT LoraConfig) building its adapters on linear layers as :class:`FusedLoraLinear`."""
    import torch

    config._register_custom_module({torch.nn.Linear: fused_lora_linear()})
    return config


@functools.cache  # one class: PEFT and isinstance checks see the same type every time
def fused_lora_linear() -> type:
    """The class :class:`FusedLoraLinear`, made on first use (torch and PEFT load only when a model does)."""
    import torch
    from peft.tuners.lora.layer import Linear

    class FusedLoraLinear(Linear):
        """PEFT's LoRA linear layer, computing ``x W^T + b + s (x A^T) B^T`` as a matmul and an in-place
        ``addmm_`` on its output. PEFT's own forward adds three tensors of the output's size a projection
        (``B``'s product, its scaled copy, the sum) and one more in the backward, each mapped and zeroed
        afresh when it is 1 MiB or more (trainers/local/heap.py): 30% of the embedded trainer's page faults
        in the quickstart's update (benchmarks/update_profile.py). Same value up to float rounding; any other
        case (adapters off, merged, several adapters, a variant, dropout, extra arguments) is PEFT's forward."""

        def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            adapter = self._plain_adapter(x, args, kwargs)
            if adapter is None:
                return super().forward(x, *args, **kwargs)
            base: Any = self.base_layer
            lora_a: Any = self.lora_A[adapter]
            lora_b: Any = self.lora_B[adapter]
            flat = x.reshape(-1, x.shape[-1])
            out = torch.nn.functional.linear(flat, base.weight, base.bias)
            down = torch.nn.functional.linear(flat, lora_a.weight)
            # In place is safe for autograd: a linear's backward needs its inputs, not its output.
            out.addmm_(down, lora_b.weight.t(), alpha=self.scaling[adapter])
            return out.view(*x.shape[:-1], out.shape[-1])

        def _plain_adapter(self, x: torch.Tensor, args: tuple, kwargs: dict) -> Optional[str]:
            """The one active plain adapter this layer applies, if the fused product computes it."""
            if args or kwargs or self.disable_adapters or self.merged:
                return None
            active = [name for name in self.active_adapters if name in self.lora_A]
            if len(active) != 1 or active[0] in self.lora_variant:
                return None
            adapter = active[0]
            if not isinstance(self.lora_dropout[adapter], torch.nn.Identity):
                return None
            dtypes = {x.dtype, self.base_layer.weight.dtype, self.lora_A[adapter].weight.dtype}
            return adapter if len(dtypes) == 1 else None

    return FusedLoraLinear


def sync_trainable(source: Any, target: Any) -> None:
    """Copy ``source``'s trainable parameters into ``target`` (a lower-precision engine copy)."""
    import torch

    targets = dict(target.named_parameters())
    with torch.no_grad():
        for name, param in source.named_parameters():
            if param.requires_grad:
                targets[name].copy_(param)
