"""GRPO as Miles computes it: group-normalized advantages, PPO clipped loss, k3 KL, entropy, TIS.

Tensors are ``[samples, response tokens]``, right-padded, with ``loss_mask`` 1 on model tokens and 0
on observations, corrections and padding. Every token term is multiplied by the mask before it is
reduced, so masked positions contribute nothing to the loss or its gradient. The reduction is
Miles' default: the mean over a sample's model tokens, then the mean over samples.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Optional, Sequence

import torch

from searchr1.config.schema import GrpoConfig, LocalTrainerConfig, TisConfig
from searchr1.engines import progress
from searchr1.health import mismatch_metrics, update_kl
from searchr1.tis import TisResult, compute_tis
from searchr1.trainers.local.logprobs import score_responses

log = logging.getLogger("searchr1.trainers.local")

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


def grpo_loss(inputs: LossInputs, cfg: GrpoConfig, total_samples: int) -> tuple[torch.Tensor, dict[str, float]]:
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


@dataclass(frozen=True)
class Group:
    """The n sampled responses of one prompt, with what the rollout recorded about them."""

    prompt_ids: list[int]
    responses: list[list[int]]
    loss_masks: list[list[int]]
    rollout_logprobs: list[list[float]]
    advantages: torch.Tensor


@dataclass(frozen=True)
class Chunk:
    """One micro-batch: some responses of one group (they share the prompt forward)."""

    group: Group
    rows: tuple[int, ...]

    @property
    def responses(self) -> list[list[int]]:
        return [self.group.responses[i] for i in self.rows]


def chunks_of(groups: Sequence[Group], micro_batch_size: int) -> list[Chunk]:
    return [Chunk(g, rows) for g in groups for rows in length_batches(g, micro_batch_size)]


def length_batches(group: Group, micro_batch_size: int) -> list[tuple[int, ...]]:
    """The group's rows in micro-batches of at most ``micro_batch_size``, rows of similar length together.

    A micro-batch runs every row to its longest response (padding), and each micro-batch runs the prompt
    once. Rows sorted by length are cut where that costs the fewest token positions, prompts included
    (the quickstart's first group, responses of 161-477 tokens: 2540 positions in one batch, 2014 in two).
    """
    order = sorted(range(len(group.responses)), key=lambda i: len(group.responses[i]))
    lengths = [len(group.responses[i]) for i in order]
    prompt = len(group.prompt_ids)
    # best[end]: fewest positions for order[:end]; cut[end]: where its last micro-batch starts.
    best, cut = [0] * (len(order) + 1), [0] * (len(order) + 1)

    def positions(start: int, end: int) -> int:  # order[:start] at its best, then order[start:end] as one micro-batch
        return best[start] + prompt + (end - start) * lengths[end - 1]

    for end in range(1, len(order) + 1):
        cut[end] = min(range(max(0, end - micro_batch_size), end), key=lambda start: positions(start, end))
        best[end] = positions(cut[end], end)
    batches, end = [], len(order)
    while end:
        batches.append(tuple(sorted(order[cut[end] : end])))  # each micro-batch in the group's order
        end = cut[end]
    return batches[::-1]


def grpo_update(
    policy: Any,
    reference: Optional[Callable[[], ContextManager[Any]]],
    groups: Sequence[Group],
    optimizer: torch.optim.Optimizer,
    cfg: LocalTrainerConfig,
    grpo_cfg: GrpoConfig,
    tis_cfg: TisConfig,
    *,
    temperature: float,
    pad_token_id: int,
    label: str = "update",
) -> dict[str, float]:
    """One optimizer step on a rollout batch; returns train/*, tis/* and the health/mismatch_* metrics.
    While it works, a console line every ``progress.EVERY_S`` names it (``label``) and counts samples done.

    ``reference()`` enters a context yielding the frozen reference model (None: no KL term).
    There is one optimizer step per rollout, so the PPO ratio's "old" logprobs are the policy's
    own detached logprobs in the same pass. Only batch-normalized TIS needs every sample's old
    logprobs before the first backward; then a no-grad pass computes them first.
    """
    chunks = chunks_of(groups, cfg.micro_batch_size)
    total = sum(len(c.rows) for c in chunks)
    score = functools.partial(
        score_responses, temperature=temperature, pad_token_id=pad_token_id, chunk_tokens=cfg.logprob_chunk_tokens
    )
    old: dict[int, torch.Tensor] = {}
    weights: dict[int, list[torch.Tensor]] = {}
    if tis_cfg.enabled and tis_cfg.batch_normalize:
        with torch.no_grad():
            old = {i: score(policy, c.group.prompt_ids, c.responses).logprobs for i, c in enumerate(chunks)}
        weights = _split(_tis(chunks, old, tis_cfg).weights, chunks)
    optimizer.zero_grad(set_to_none=True)
    sums: dict[str, float] = {}
    loss_total = 0.0
    started = last_line = time.monotonic()
    for i, chunk in enumerate(chunks):
        loss, metrics = _micro_batch_backward(
            policy, reference, chunk, i, old, weights.get(i), score, grpo_cfg, tis_cfg, total
        )
        loss_total += loss
        if time.monotonic() - last_line >= progress.EVERY_S:  # the update is most of a CPU step: show it moving
            last_line = time.monotonic()
            done = sum(len(c.rows) for c in chunks[: i + 1])
            log.info("%s: %.0f s, %d of %d samples scored and back-propagated", label, last_line - started, done, total)
        for key, value in metrics.items():
            sums[key] = sums.get(key, 0.0) + value * len(chunk.rows)
    params = [p for p in policy.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    optimizer.step()
    result = {key: value / total for key, value in sums.items()}
    aligned = _aligned(chunks, old)
    result.update(compute_tis(*aligned, tis_cfg).metrics)
    result.update(mismatch_metrics(*aligned))
    result.update(_update_kl(policy, chunks[0], old[0], score))
    result.update({"train/loss": loss_total, "train/grad_norm": float(grad_norm)})
    return result


def _micro_batch_backward(
    policy: Any,
    reference: Optional[Callable[[], ContextManager[Any]]],
    chunk: Chunk,
    index: int,
    old: dict[int, torch.Tensor],
    tis_weights: Optional[list[torch.Tensor]],
    score: Callable[..., Any],
    grpo_cfg: GrpoConfig,
    tis_cfg: TisConfig,
    total: int,
) -> tuple[float, dict[str, float]]:
    """Forward and backward of one micro-batch; records its detached logprobs in ``old[index]``.

    A function of its own so that the micro-batch's scores and loss, whose autograd graph still holds
    the checkpointed layer inputs and KV tensors after the backward (SmolLM2, 5 x 530 tokens: ~0.45 GB),
    are freed when it returns, before the next micro-batch's forward, not when the loop rebinds them.
    """
    ref_logprobs = None
    if reference is not None and grpo_cfg.kl_loss_coef > 0:
        with torch.no_grad(), reference() as ref_model:
            ref_logprobs = score(ref_model, chunk.group.prompt_ids, chunk.responses).logprobs
    scores = score(policy, chunk.group.prompt_ids, chunk.responses, with_entropy=True)
    old.setdefault(index, scores.logprobs.detach())
    length = scores.logprobs.shape[1]
    weights = None
    if tis_cfg.enabled:  # token/sequence/geometric weights depend on the sample alone
        weights = _stack(tis_weights or _tis([chunk], {0: old[index]}, tis_cfg).weights, length)
    loss, metrics = grpo_loss(
        LossInputs(
            logprobs=scores.logprobs,
            old_logprobs=old[index],
            advantages=chunk.group.advantages[list(chunk.rows)],
            loss_mask=_padded([chunk.group.loss_masks[r] for r in chunk.rows], length),
            tis_weights=weights,
            ref_logprobs=ref_logprobs,
            entropy=scores.entropy,
        ),
        grpo_cfg,
        total,
    )
    loss.backward()
    return float(loss.detach()), metrics


def _update_kl(policy: Any, chunk: Chunk, before: torch.Tensor, score: Callable[..., Any]) -> dict[str, float]:
    """health/update_kl on the step's first micro-batch, rescored with the updated weights: one no-grad
    forward of at most trainer.micro_batch_size samples (a sample of the batch, enough to see a destructive step)."""
    with torch.no_grad():
        after = score(policy, chunk.group.prompt_ids, chunk.responses).logprobs
    masks = _padded([chunk.group.loss_masks[r] for r in chunk.rows], after.shape[1])
    return update_kl(list(before), list(after), list(masks))


def _tis(chunks: Sequence[Chunk], old: dict[int, torch.Tensor], tis_cfg: TisConfig) -> TisResult:
    return compute_tis(*_aligned(chunks, old), tis_cfg)


def _aligned(chunks: Sequence[Chunk], old: dict[int, torch.Tensor]) -> tuple[list, list, list]:
    """Per sample: the trainer's logprobs, the engine's and the loss mask, on the response's tokens."""
    train, rollout, masks = [], [], []
    for i, chunk in enumerate(chunks):
        for j, row in enumerate(chunk.rows):
            length = len(chunk.group.responses[row])
            train.append(old[i][j, :length])
            rollout.append(torch.tensor(chunk.group.rollout_logprobs[row], dtype=torch.float32))
            masks.append(torch.tensor(chunk.group.loss_masks[row], dtype=torch.float32))
    return train, rollout, masks


def _split(weights: list[torch.Tensor], chunks: Sequence[Chunk]) -> dict[int, list[torch.Tensor]]:
    out, start = {}, 0
    for i, chunk in enumerate(chunks):
        out[i] = weights[start : start + len(chunk.rows)]
        start += len(chunk.rows)
    return out


def _padded(rows: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    out = torch.zeros((len(rows), length), dtype=torch.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(list(row), dtype=torch.float32)
    return out


def _stack(rows: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    out = torch.zeros((len(rows), length), dtype=torch.float32)
    for i, row in enumerate(rows):
        out[i, : row.shape[0]] = row
    return out
