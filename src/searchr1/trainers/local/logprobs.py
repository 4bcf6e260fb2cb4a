"""Trainer-side logprobs of response tokens, with one prompt forward shared by a GRPO group.

The n samples of a prompt share its (long) prompt; its KV cache is computed once, expanded to the
group and the responses are run on top of it. Gradients flow back through the shared prompt
activations exactly as they would through n separate copies, at a fraction of the compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch


@dataclass(frozen=True)
class ResponseScores:
    logprobs: torch.Tensor
    """``[samples, max response len]`` logprob of each response token (0 past a response's end)."""
    entropy: Optional[torch.Tensor]
    """Per-token entropy of the policy distribution, when asked for."""


def score_responses(
    model: Any,
    prompt_ids: Sequence[int],
    responses: Sequence[Sequence[int]],
    *,
    temperature: float = 1.0,
    pad_token_id: int = 0,
    with_entropy: bool = False,
) -> ResponseScores:
    """Logprobs of ``responses`` continuing ``prompt_ids`` under ``model`` (grad mode is the caller's).

    Logits are divided by the sampling temperature (Miles does the same), so these match the
    engine's logprobs of the same tokens up to numerics.
    """
    count, length = len(responses), max(len(r) for r in responses)
    prompt = torch.tensor([list(prompt_ids)], dtype=torch.long)
    out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
    cache = out.cache
    for layer in cache.layers:
        layer.keys = layer.keys.expand(count, -1, -1, -1)
        layer.values = layer.values.expand(count, -1, -1, -1)
    ids = torch.full((count, length), pad_token_id, dtype=torch.long)
    response_mask = torch.zeros((count, length), dtype=torch.long)
    for i, response in enumerate(responses):
        ids[i, : len(response)] = torch.tensor(list(response), dtype=torch.long)
        response_mask[i, : len(response)] = 1
    mask = torch.cat([torch.ones((count, len(prompt_ids)), dtype=torch.long), response_mask], dim=1)
    positions = torch.arange(len(prompt_ids), len(prompt_ids) + length).expand(count, -1)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                   use_cache=True).logits
    # The prompt's last logits predict each response's first token; response logits predict the rest.
    logits = torch.cat([out.logits[:, -1:].expand(count, -1, -1), logits[:, :-1]], dim=1).float()
    if temperature > 0:
        logits = logits / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, ids.unsqueeze(-1)).squeeze(-1) * response_mask
    entropy = -(log_probs.exp() * log_probs).sum(-1) * response_mask if with_entropy else None
    return ResponseScores(logprobs=picked, entropy=entropy)
