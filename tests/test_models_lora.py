"""LoRA wrapping: adapters on the projections, and no third-party deprecation warning on the console."""

from __future__ import annotations

import warnings
from unittest import mock

import torch

from searchr1.models.lora import fused_lora_linear, with_lora
from tests.support.local_trainer import tiny_llama


def test_wrapping_adds_trainable_adapters_and_prints_no_deprecation_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = with_lora(tiny_llama(), rank=4)
    assert [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))] == []
    trainable = [name for name, param in policy.named_parameters() if param.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)


def _trained_adapters(policy, seed: int = 1) -> None:
    """Non-zero B matrices (PEFT starts them at 0, which would hide a wrong product)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


def _logits_and_grads(policy, ids):
    policy.zero_grad(set_to_none=True)
    logits = policy(input_ids=ids).logits
    (logits.float().square().mean()).backward()
    grads = {name: param.grad.clone() for name, param in policy.named_parameters() if param.grad is not None}
    return logits.detach(), grads


def test_fused_lora_linears_compute_what_peft_computes_forward_and_backward():
    from peft.tuners.lora.layer import Linear

    policy = with_lora(tiny_llama(vocab_size=256), rank=4)
    _trained_adapters(policy)
    fused = [m for m in policy.modules() if isinstance(m, fused_lora_linear())]
    assert len(fused) == 14  # 7 projections x 2 layers
    ids = torch.randint(0, 256, (3, 11), generator=torch.Generator().manual_seed(0))
    logits, grads = _logits_and_grads(policy, ids)
    with mock.patch.object(fused_lora_linear(), "forward", Linear.forward):  # PEFT's own forward
        peft_logits, peft_grads = _logits_and_grads(policy, ids)
    assert torch.allclose(logits, peft_logits, atol=1e-5)
    assert grads.keys() == peft_grads.keys() and len(grads) == 28
    for name, grad in grads.items():
        assert torch.allclose(grad, peft_grads[name], atol=1e-6, rtol=1e-4), name


def test_fused_lora_linears_leave_disabled_and_merged_adapters_to_peft():
    policy = with_lora(tiny_llama(vocab_size=256), rank=4)
    _trained_adapters(policy)
    ids = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapted = policy(input_ids=ids).logits
        with policy.disable_adapter():
            base = policy(input_ids=ids).logits
        merged = policy.merge_and_unload()(input_ids=ids).logits
    assert not torch.allclose(adapted, base, atol=1e-3)
    assert torch.allclose(base, tiny_llama(vocab_size=256)(input_ids=ids).logits, atol=1e-6)
    assert torch.allclose(adapted, merged, atol=1e-5)
