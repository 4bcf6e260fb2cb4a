"""Supervised fine-tuning on multi-turn trajectories (a warm start); ``models/policy_writer.py`` saves it.

The loss is the NLL of the trajectory's model tokens (``loss_mask`` 1) with observations and
corrections masked exactly as in RL, computed by the same logprob code as the GRPO update (one
prompt forward shared by the trajectories of a prompt, chunked over the vocabulary projection).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from searchr1.rollout.trajectory import Trajectory
from searchr1.trainers.local.logprobs import DEFAULT_CHUNK_TOKENS, score_responses


def sft_step(
    policy: Any,
    optimizer: torch.optim.Optimizer,
    trajectories: Sequence[Trajectory],
    *,
    micro_batch_size: int,
    grad_clip: float,
    logprob_chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
) -> dict[str, float]:
    """One optimizer step on the masked mean NLL over every model token of ``trajectories``.

    Micro-batches (trajectories of one prompt, at most ``micro_batch_size`` each) accumulate their
    share of the token mean, so the update does not depend on the micro-batch size.
    """
    batches = _micro_batches(trajectories, micro_batch_size)
    total = sum(sum(t.loss_mask) for _, rows in batches for t in rows)
    if total == 0:
        raise ValueError("sft_step: no trajectory has a model token (loss_mask is all 0)")
    optimizer.zero_grad(set_to_none=True)
    nll_sum = 0.0
    for prompt, rows in batches:
        scores = score_responses(policy, prompt, [t.response_ids for t in rows], chunk_tokens=logprob_chunk_tokens)
        mask = _padded([t.loss_mask for t in rows], scores.logprobs.shape[1])
        nll = -(scores.logprobs * mask).sum()
        (nll / total).backward()
        nll_sum += float(nll.detach())
    params = [p for p in policy.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return {"sft/loss": nll_sum / total, "sft/tokens": float(total), "sft/grad_norm": float(grad_norm)}


def _micro_batches(trajectories: Sequence[Trajectory], size: int) -> list[tuple[list[int], list[Trajectory]]]:
    """Trajectories grouped by prompt (they share its forward), in slices of at most ``size``."""
    by_prompt: dict[tuple[int, ...], list[Trajectory]] = {}
    for trajectory in trajectories:
        if any(trajectory.loss_mask):  # nothing to learn from a trajectory without model tokens
            by_prompt.setdefault(tuple(trajectory.prompt_ids), []).append(trajectory)
    return [
        (list(prompt), rows[start : start + size])
        for prompt, rows in by_prompt.items()
        for start in range(0, len(rows), size)
    ]


def _padded(rows: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    out = torch.zeros((len(rows), length), dtype=torch.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(list(row), dtype=torch.float32)
    return out
