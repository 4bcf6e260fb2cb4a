"""Write a policy where ``trainer.init_from`` and ``eval.checkpoint`` find it: the LoRA adapter or the whole
HF model, and ``provenance.json`` saying how it was made. The GRPO trainer, ``searchr1-sft`` and
``searchr1-export`` all write through :func:`save_warm_start`."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Optional

PROVENANCE_FILE = "provenance.json"


def save_warm_start(
    directory: Path, policy: Any, provenance: dict, *, merged: bool = False, tokenizer: Optional[Any] = None
) -> Path:
    """Write what ``trainer.init_from`` loads: the LoRA adapter (or, for a full fine-tune, the whole
    HF model) and ``provenance.json`` (``provenance`` as given) into ``directory``.

    ``merged=True`` folds a LoRA adapter into a copy of the base weights and writes a whole HF model
    dir (the starting point Miles converts); ``tokenizer``, when given, is saved alongside.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = policy
    if merged and hasattr(policy, "merge_and_unload"):
        model = copy.deepcopy(policy).merge_and_unload()  # a copy: the policy keeps its adapter
    with warnings.catch_warnings():
        # PEFT looks for the base model's config.json to see whether the vocabulary changed; our base is
        # converted from a GGUF into the model cache without one, and LoRA never touches the vocabulary.
        warnings.filterwarnings("ignore", message="Could not find a config file in", category=UserWarning)
        model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    (directory / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    return directory
