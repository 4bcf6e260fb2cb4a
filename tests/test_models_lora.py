"""LoRA wrapping: adapters on the projections, and no third-party deprecation warning on the console."""

from __future__ import annotations

import warnings

from searchr1.models.lora import with_lora
from tests.support.local_trainer import tiny_llama


def test_wrapping_adds_trainable_adapters_and_prints_no_deprecation_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = with_lora(tiny_llama(), rank=4)
    assert [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))] == []
    trainable = [name for name, param in policy.named_parameters() if param.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
