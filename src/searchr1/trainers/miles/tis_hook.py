"""``--custom-tis-function-path``: :func:`searchr1.tis.compute_tis` with the signature of Miles'
``mis.compute_mis_weights_with_cp``, its metrics scaled so Miles' reduction reports them as ours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from searchr1.health import mismatch_metrics
from searchr1.tis import ESS_FRACTION_KEY, ESS_KEY, compute_tis
from searchr1.trainers.miles.custom_config import tis_config_from_args


def tis_weights(
    args: Any,
    *,
    pg_loss: Any,
    train_log_probs: list,
    rollout_log_probs: list,
    loss_masks: list,
    total_lengths: list[int],
    response_lengths: list[int],
    **kwargs: Any,
) -> tuple[Any, list, dict]:
    """Miles' TIS hook contract (as ``mis.compute_mis_weights_with_cp``): returns the weighted per-token
    ``pg_loss``, the loss masks after rejection, and per-token metric tensors Miles logs as ``train/<key>``."""
    import torch

    cfg = tis_config_from_args(args)
    cp = _ContextParallel(args, total_lengths, response_lengths, kwargs.get("max_seq_lens"))
    train, rollout = cp.gather(train_log_probs), cp.gather(rollout_log_probs)
    result = compute_tis(train, rollout, loss_masks, cfg)
    if cfg.enabled:
        pg_loss = pg_loss * cp.local(result.weights).to(pg_loss.dtype)
    local_lengths = [int(t.numel()) for t in train_log_probs]
    scale = masked_share_correction(loss_masks, per_token=bool(getattr(args, "calculate_per_token_loss", False)))
    metrics = {
        key: torch.cat([torch.full((n,), float(value) * scale, device=pg_loss.device) for n in local_lengths])
        for key, value in miles_tis_metrics(
            {**result.metrics, **mismatch_metrics(train, rollout, loss_masks)}, args
        ).items()
    }
    return pg_loss, result.masks, metrics


def miles_tis_metrics(metrics: dict[str, float], args: Any) -> dict[str, float]:
    """Miles averages hook metrics over samples and micro-batches, so the ESS is reported as the
    micro-batch fraction times the optimizer batch (in samples); the fraction itself is unchanged."""
    out = dict(metrics)
    out[ESS_KEY] = metrics[ESS_FRACTION_KEY] * float(getattr(args, "global_batch_size", 1) or 1)
    return out


def masked_share_correction(loss_masks: list, *, per_token: bool) -> float:
    """Undo the weight Miles' metric reduction gives fully masked samples.

    Miles reduces a hook metric as a masked mean per sample (a per-token sum with
    ``--calculate-per-token-loss``) and divides by the step's sample (token) count, in which a fully
    masked sample (a FAILED one) counts 1 but contributes 0: our statistics of the live samples would
    read live/N of their value. Scaling by count/live makes the micro-batch report its own value.
    A micro-batch with no trainable token at all still reads 0 (no weights exist to report)."""
    sums = [float(m.sum()) for m in loss_masks]
    if per_token:
        live, count = sum(sums), sum(max(s, 1.0) for s in sums)
    else:
        live, count = sum(1.0 for s in sums if s > 0), float(len(sums))
    return count / live if live else 0.0


@dataclass
class _ContextParallel:
    """Whole-sequence views of context-parallel slices (identity without CP), as mis.py does."""

    args: Any
    total_lengths: list[int]
    response_lengths: list[int]
    max_seq_lens: Optional[list[int]]

    @property
    def enabled(self) -> bool:
        return int(getattr(self.args, "context_parallel_size", 1) or 1) > 1

    def gather(self, values: list) -> list:
        if not self.enabled:
            return list(values)
        from miles.backends.training_utils.cp_utils import all_gather_with_cp

        return [
            all_gather_with_cp(
                v, self.total_lengths[i], self.response_lengths[i], self.args.qkv_format, self._max_len(i)
            )
            for i, v in enumerate(values)
        ]

    def local(self, values: list) -> Any:
        import torch

        if not self.enabled:
            return torch.cat(values)
        from miles.backends.training_utils.cp_utils import slice_log_prob_with_cp

        return torch.cat(
            [
                slice_log_prob_with_cp(
                    v, self.total_lengths[i], self.response_lengths[i], self.args.qkv_format, self._max_len(i)
                )
                for i, v in enumerate(values)
            ]
        )

    def _max_len(self, i: int) -> Optional[int]:
        return self.max_seq_lens[i] if self.max_seq_lens is not None else None
