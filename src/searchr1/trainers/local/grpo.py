"""GRPO as Miles computes it: group-normalized advantages, PPO clipped loss, k3 KL, entropy, TIS.

Tensors are ``[samples, response tokens]``, right-padded, with ``loss_mask`` 1 on model tokens and 0
on observations, corrections and padding. Every token term is multiplied by the mask before it is
reduced, so masked positions contribute nothing to the loss or its gradient. The reduction is
Miles' default: the mean over a sample's model tokens, then the mean over samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from searchr1.config.schema import LocalTrainerConfig

KL_LOG_RATIO_LIMIT = 20.0
KL_LIMIT = 10.0


@dataclass(frozen=True)
class LossInputs:
    """One micro-batch of responses, aligned on response tokens."""

    logprobs: torch.Tensor
    """Current policy logprobs of the response tokens (with grad)."""
    old_logprobs: torch.Tensor
    """Policy logprobs before this step's update (the PPO ratio's denominator)."""
    advantages: torch.Tensor
    """One advantage per sample, ``[samples]``."""
    loss_mask: torch.Tensor
    tis_weights: Optional[torch.Tensor] = None
    """pi_train / pi_rollout weights (already bounded, 0 on masked tokens); None: no TIS."""
    ref_logprobs: Optional[torch.Tensor] = None
    """Frozen reference logprobs; None: no KL term."""
    entropy: Optional[torch.Tensor] = None
    """Per-token entropy of the policy (with grad); None: no entropy term."""


def group_advantages(rewards: Sequence[float], group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO advantages: each reward minus its group's mean, over the group's std (groups are contiguous)."""
    scores = torch.tensor(list(rewards), dtype=torch.float32).view(-1, group_size)
    centred = scores - scores.mean(dim=1, keepdim=True)
    if group_size > 1:  # Miles skips the std for groups of one (std is undefined)
        centred = centred / (scores.std(dim=1, keepdim=True) + eps)
    return centred.view(-1)


def low_var_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref) per token, clamped as Miles does for stability."""
    log_ratio = (ref_logprobs - logprobs).clamp(-KL_LOG_RATIO_LIMIT, KL_LOG_RATIO_LIMIT)
    return (log_ratio.exp() - log_ratio - 1).clamp(-KL_LIMIT, KL_LIMIT)


def grpo_loss(inputs: LossInputs, cfg: LocalTrainerConfig, total_samples: int) -> tuple[torch.Tensor, dict[str, float]]:
    """This micro-batch's share of the step loss (sum of per-sample means / ``total_samples``).

    Summing the returned losses over a step's micro-batches gives the mean over all its samples, so
    gradients accumulate to the same update whatever the micro-batch size.
    """
    mask = inputs.loss_mask.float()
    ratio = (inputs.logprobs - inputs.old_logprobs).exp()
    advantages = inputs.advantages.unsqueeze(-1)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - cfg.eps_clip, 1.0 + cfg.eps_clip_high)
    pg = torch.maximum(unclipped, clipped)
    if inputs.tis_weights is not None:
        pg = pg * inputs.tis_weights
    per_token = pg
    kl = low_var_kl(inputs.logprobs, inputs.ref_logprobs) if inputs.ref_logprobs is not None else None
    if kl is not None:
        per_token = per_token + cfg.kl_loss_coef * kl
    if inputs.entropy is not None and cfg.entropy_coef:
        per_token = per_token - cfg.entropy_coef * inputs.entropy
    loss = (_sample_means(per_token, mask)).sum() / total_samples
    metrics = {
        "train/pg_loss": _batch_mean(pg, mask),
        "train/pg_clipfrac": _batch_mean((clipped > unclipped).float(), mask),
        "train/ppo_kl": _batch_mean(inputs.old_logprobs - inputs.logprobs, mask),
    }
    if kl is not None:
        metrics["train/kl_loss"] = _batch_mean(kl, mask)
    if inputs.entropy is not None:
        metrics["train/entropy"] = _batch_mean(inputs.entropy, mask)
    return loss, metrics


def _sample_means(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


def _batch_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    """Sample-mean-then-batch-mean of a detached per-token value (what the loss reduction sees)."""
    return float(_sample_means(values.detach(), mask).mean())
