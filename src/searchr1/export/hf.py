"""An embedded run's policy as a standard Hugging Face model dir that plain ``transformers`` loads.

Merged (the default): config, tokenizer and safetensors of the base weights with the LoRA folded in,
what ``AutoModelForCausalLM.from_pretrained`` and SGLang load. Adapter only: peft's own format
(``adapter_config.json`` + ``adapter_model.safetensors``) for ``PeftModel.from_pretrained`` on the base.
Either way ``provenance.json`` says what was exported (path, kind, step, sha256).
"""

from __future__ import annotations

import logging
from pathlib import Path

from searchr1.config.checks import ConfigError
from searchr1.config.schema import ModelConfig
from searchr1.models.checkpoints import SavedPolicy, load_saved_policy, run_model_config
from searchr1.models.loading import load_policy_tokenizer
from searchr1.models.policy_writer import save_warm_start

log = logging.getLogger(__name__)


def export_hf(saved: SavedPolicy, out: Path, model_cfg: ModelConfig, *, adapter_only: bool = False) -> Path:
    """Write ``saved`` to ``out`` (a new or empty dir); ``model_cfg`` is the base of a dir outside any run."""
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; pick a new directory")
    base = run_model_config(saved.run_dir, "--out") if saved.run_dir else model_cfg
    policy = load_saved_policy(saved, base, merge=not adapter_only)
    if adapter_only and not hasattr(policy, "peft_config"):
        raise ConfigError(
            f"--adapter-only: {saved.path} holds no LoRA adapter (it trained all weights, "
            "trainer.lora_rank=0, or is a whole model); export it merged"
        )
    provenance = {
        "source": saved.record(),
        "base_model": base.hf_checkpoint,
        "format": "peft_adapter" if adapter_only else "merged_hf_model",
    }
    save_warm_start(out, policy, provenance, tokenizer=load_policy_tokenizer(base))
    log.info("exported %s (%s, step %s) to %s", saved.path, provenance["format"], saved.step, out)
    return out
