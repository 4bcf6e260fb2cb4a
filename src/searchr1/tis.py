"""Truncated importance sampling (TIS) between the trainer's and the inference engine's logprobs.

The engine that sampled a trajectory (SGLang, or the embedded engine in bfloat16) and the trainer
that scores it disagree slightly on token probabilities. TIS reweights each model token's policy
loss by ``pi_train / pi_rollout``, bounded so a few tokens cannot dominate the gradient. The
semantics follow Miles' mis.yaml (level: token | sequence | geometric; mode: truncate | clip | mask)
so a run means the same thing on both trainers. Observation tokens (loss_mask 0) never count.

Both trainers call :func:`compute_tis`; the Miles hook only adapts tensors and metric shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from searchr1.config.schema import TisConfig

if TYPE_CHECKING:  # torch is imported lazily: the core install has no torch
    from torch import Tensor

# exp() of a summed sequence log-ratio overflows quickly; beyond e^20 the bound decides anyway.
LOG_RATIO_LIMIT = 20.0

ESS_KEY = "tis/effective_sample_size"
ESS_FRACTION_KEY = "tis/effective_sample_size_fraction"


@dataclass(frozen=True)
class TisResult:
    """Per-sequence token weights to multiply into the policy loss, plus scalar metrics."""

    weights: list["Tensor"]
    """What to multiply each token's loss by: the bounded ratios when ``tis.enabled``, else ones.
    Zero at masked tokens and at tokens rejected by mode=mask."""
    metrics: dict[str, float]
    """ESS and weight statistics, always computed from the bounded ratios (also with TIS off)."""
    masks: list["Tensor"] = field(default_factory=list)
    """Loss masks after mode=mask rejection (the input masks for the other modes)."""


def compute_tis(
    train_log_probs: list["Tensor"],
    rollout_log_probs: list["Tensor"],
    loss_masks: list["Tensor"],
    cfg: TisConfig,
) -> TisResult:
    """Bounded importance weights per token and their effective sample size.

    All three lists hold one 1-D tensor per sequence, aligned on response tokens.
    """
    _check_shapes(train_log_probs, rollout_log_probs, loss_masks)
    ratios, bounded, masks = [], [], []
    for train, rollout, mask in zip(train_log_probs, rollout_log_probs, loss_masks):
        mask = mask.float()
        ratio = _ratio(train.detach().float() - rollout.detach().float(), mask, cfg.level)
        weight, kept = _bound(ratio, mask, cfg)
        ratios.append(ratio)
        bounded.append(weight * mask)
        masks.append(kept)
    if cfg.batch_normalize:  # over every model token, rejected ones included, as Miles does
        bounded = _batch_normalize(bounded, loss_masks, cfg.level)
    bounded = [w * kept for w, kept in zip(bounded, masks)]
    weights = bounded if cfg.enabled else [m.float() for m in loss_masks]
    return TisResult(weights=weights, metrics=_metrics(ratios, bounded, loss_masks, cfg), masks=masks)


def _check_shapes(train: list["Tensor"], rollout: list["Tensor"], masks: list["Tensor"]) -> None:
    if not len(train) == len(rollout) == len(masks):
        raise ValueError(
            f"TIS needs one tensor per sequence in each list; got {len(train)}, {len(rollout)}, {len(masks)}"
        )
    for i, (t, r, m) in enumerate(zip(train, rollout, masks)):
        if not t.shape == r.shape == m.shape:
            raise ValueError(
                f"TIS sequence {i}: shapes differ: train {tuple(t.shape)}, rollout {tuple(r.shape)}, mask {tuple(m.shape)}"
            )


def _ratio(log_diff: "Tensor", mask: "Tensor", level: str) -> "Tensor":
    """pi_train / pi_rollout per token, aggregated to the configured level and expanded back."""
    masked = log_diff * mask
    if level == "token":
        log_ratio = masked
    elif level == "sequence":  # product of token ratios
        log_ratio = masked.sum().expand_as(log_diff)
    elif level == "geometric":  # geometric mean of token ratios
        log_ratio = (masked.sum() / mask.sum().clamp_min(1)).expand_as(log_diff)
    else:
        raise ValueError(f"tis.level={level!r} is not allowed; allowed: token, sequence, geometric")
    return log_ratio.clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT).exp()


def _bound(ratio: "Tensor", mask: "Tensor", cfg: TisConfig) -> tuple["Tensor", "Tensor"]:
    """Apply the mode; return (weight, mask kept for the loss)."""
    if cfg.mode == "truncate":  # Miles: clamp to [0, upper]; the lower bound is unused
        return ratio.clamp(0.0, cfg.upper_bound), mask
    if cfg.mode == "clip":
        return ratio.clamp(cfg.lower_bound, cfg.upper_bound), mask
    if cfg.mode == "mask":  # keep the raw ratio, drop tokens outside [lower, upper]
        inside = (ratio >= cfg.lower_bound) & (ratio <= cfg.upper_bound)
        return ratio, mask * inside.float()
    raise ValueError(f"tis.mode={cfg.mode!r} is not allowed; allowed: truncate, clip, mask")


def _batch_normalize(weights: list["Tensor"], masks: list["Tensor"], level: str) -> list["Tensor"]:
    """Rescale so the mean weight over the batch is 1 (token mean, or mean of sequence weights)."""
    # TisConfig rejects geometric here (as Miles does): geometric weights are ~1 by construction.
    if level == "sequence":
        mean = sum(_masked_mean(w, m) for w, m in zip(weights, masks)) / max(len(weights), 1)
    else:
        total = sum(float((w * m.float()).sum()) for w, m in zip(weights, masks))
        mean = total / max(sum(float(m.float().sum()) for m in masks), 1.0)
    if mean <= 1e-8:
        return weights
    return [w / mean for w in weights]


def _masked_mean(values: "Tensor", mask: "Tensor") -> float:
    mask = mask.float()
    return float((values * mask).sum() / mask.sum().clamp_min(1))


def effective_sample_size(sequence_weights: list[float]) -> float:
    """Kish's ESS, (sum w)^2 / sum w^2: how many equally weighted samples the batch is worth."""
    square_sum = sum(w * w for w in sequence_weights)
    if square_sum <= 0.0:
        return 0.0
    return sum(sequence_weights) ** 2 / square_sum


def _metrics(
    ratios: list["Tensor"], bounded: list["Tensor"], masks: list["Tensor"], cfg: TisConfig
) -> dict[str, float]:
    live = [i for i, m in enumerate(masks) if float(m.float().sum()) > 0]
    if not live:  # nothing trainable in this batch: no weights to judge
        return {
            ESS_KEY: 0.0,
            ESS_FRACTION_KEY: 0.0,
            "tis/ratio_mean": 1.0,
            "tis/weight_mean": 1.0,
            "tis/bounded_fraction": 0.0,
        }
    # One weight per sequence: its token weights' mean over model tokens (rejected tokens count 0).
    seq_weights = [_masked_mean(bounded[i], masks[i]) for i in live]
    ess = effective_sample_size(seq_weights)
    tokens = sum(float(masks[i].float().sum()) for i in live)
    return {
        ESS_KEY: ess,
        ESS_FRACTION_KEY: ess / len(live),
        "tis/ratio_mean": sum(float((ratios[i] * masks[i].float()).sum()) for i in live) / tokens,
        "tis/weight_mean": sum(float((bounded[i] * masks[i].float()).sum()) for i in live) / tokens,
        "tis/bounded_fraction": sum(float((_out_of_bounds(ratios[i], cfg) * masks[i].float()).sum()) for i in live)
        / tokens,
    }


def _out_of_bounds(ratio: "Tensor", cfg: TisConfig) -> "Tensor":
    """Tokens whose ratio the mode changed (truncate only has an upper bound)."""
    above = ratio > cfg.upper_bound
    if cfg.mode == "truncate":
        return above.float()
    return (above | (ratio < cfg.lower_bound)).float()
