"""Trainer-side logprobs of response tokens, with one prompt forward shared by a GRPO group.

The n samples of a prompt share its (long) prompt; its KV cache is computed once, expanded to the
group and the responses are run on top of it. Gradients flow back through the shared prompt
activations exactly as they would through n separate copies, at a fraction of the compute.

The vocabulary projection is the memory hog (SmolLM2: 49152 float32 logits a token, several copies
for softmax, entropy and their gradients). It runs on slices of ``chunk_tokens`` response tokens,
each under activation checkpointing, so forward and backward hold one slice's logits at a time; the
results equal the unchunked computation up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch.utils.checkpoint import checkpoint
from transformers.cache_utils import Cache, DynamicLayer

from searchr1.config.schema import LocalTrainerConfig

DEFAULT_CHUNK_TOKENS = LocalTrainerConfig.logprob_chunk_tokens  # the schema's default, for callers without a config


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
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> ResponseScores:
    """Logprobs of ``responses`` continuing ``prompt_ids`` under ``model`` (grad mode is the caller's).

    Logits are divided by the sampling temperature (Miles does the same), so these match the
    engine's logprobs of the same tokens up to numerics. ``chunk_tokens`` 0 projects every response
    token onto the vocabulary at once.
    """
    count, length = len(responses), max(len(r) for r in responses)
    decoder = model.get_decoder()
    prompt_layers = [_FixedPrefixLayer() for _ in decoder.layers]
    prompt = decoder(
        input_ids=torch.tensor([list(prompt_ids)], dtype=torch.long),
        cache=Cache(layers=list(prompt_layers)),
        use_cache=False,
    )
    cache = Cache(layers=[layer.latest_as_prefix(count) for layer in prompt_layers])
    ids = torch.full((count, length), pad_token_id, dtype=torch.long)
    response_mask = torch.zeros((count, length), dtype=torch.bool)
    for i, response in enumerate(responses):
        ids[i, : len(response)] = torch.tensor(list(response), dtype=torch.long)
        response_mask[i, : len(response)] = True
    mask = torch.cat([torch.ones((count, len(prompt_ids)), dtype=torch.long), response_mask.long()], dim=1)
    positions = torch.arange(len(prompt_ids), len(prompt_ids) + length).expand(count, -1)
    hidden = decoder(
        input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=False
    ).last_hidden_state
    # The prompt's last state predicts each response's first token; response states predict the rest.
    hidden = torch.cat([prompt.last_hidden_state[:, -1:].expand(count, -1, -1), hidden[:, :-1]], dim=1)
    # Padding is never projected: only the real response tokens, flattened, go through the head.
    picked, entropy = _token_scores(
        model.get_output_embeddings(),
        hidden[response_mask],
        ids[response_mask],
        temperature,
        with_entropy,
        chunk_tokens,
    )

    def unflatten(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros((count, length), dtype=values.dtype).masked_scatter(response_mask, values)

    return ResponseScores(logprobs=unflatten(picked), entropy=unflatten(entropy) if entropy is not None else None)


class _FixedPrefixLayer(DynamicLayer):
    """One layer's KV cache that never grows: attention gets the fixed prefix's keys and values (none
    in the prompt pass, the prompt's in the response pass) followed by the new ones, which the prompt
    pass's layers keep in ``latest`` for the response pass.

    Unchanged by a pass, the cache gives a decoder layer recomputed in the backward (gradient
    checkpointing, models.loading.checkpoint_layers) the very keys and values of its forward. The
    response pass's layers keep nothing: the checkpointed layers' recompute arguments hold this cache
    until the backward ends, so a kept ``latest`` would keep every layer's response keys and values
    alive that checkpointing drops (SmolLM2, 5 x 530 response tokens: 4 MB a layer, 0.12 GB in all).
    """

    def __init__(self, keys: Optional[torch.Tensor] = None, values: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.latest: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self._keeps_latest = keys is None  # only the prompt pass's layers hand their keys and values on
        if keys is not None and values is not None:
            self.lazy_initialization(keys, values)
            self.keys, self.values = keys, values

    def latest_as_prefix(self, count: int) -> _FixedPrefixLayer:
        """The last pass's new keys and values as the fixed prefix of ``count`` rows."""
        assert self.latest is not None, "no pass has reached this layer"
        keys, values = self.latest
        return _FixedPrefixLayer(keys.expand(count, -1, -1, -1), values.expand(count, -1, -1, -1))

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._keeps_latest:
            self.latest = (key_states, value_states)
        if not self.is_initialized or self.keys is None or self.values is None:
            return key_states, value_states
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


def _token_scores(
    head: Any, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool, chunk_tokens: int
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Logprob (and entropy) of each ``targets`` token from its ``hidden`` state, a slice at a time."""
    size = chunk_tokens if chunk_tokens > 0 else max(hidden.shape[0], 1)
    recompute = chunk_tokens > 0 and torch.is_grad_enabled()
    picked, entropy = [], []
    for start in range(0, hidden.shape[0], size):
        args = (head, hidden[start : start + size], targets[start : start + size], temperature, with_entropy)
        # Checkpointing drops the slice's logits after the forward and recomputes them in the backward.
        part = checkpoint(_slice_scores, *args, use_reentrant=False) if recompute else _slice_scores(*args)
        picked.append(part[0])
        entropy.append(part[1])
    return torch.cat(picked), torch.cat(entropy) if with_entropy else None


def _slice_scores(
    head: Any, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(hidden).float()
    if temperature > 0:
        logits = logits / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return picked, picked.new_zeros(0)
    return picked, -(log_probs.exp() * log_probs).sum(-1)
