"""Per-step rollout metrics, with the same W&B keys in both trainers.

``tis/effective_sample_size`` comes from :mod:`searchr1.tis`, and the backend's counters from the
search stack's ``stats_and_reset()``; both are logged beside these.
"""

from __future__ import annotations

from collections import Counter
from statistics import fmean
from typing import Mapping, Optional, Sequence

from searchr1.reward import GoldAnswers, RewardBreakdown, retrieval_hit
from searchr1.rollout.trajectory import Trajectory
from searchr1.tools.base import ToolCall


def rollout_metrics(
    trajectories: Sequence[Trajectory],
    rewards: Sequence[RewardBreakdown],
    golden_answers: Sequence[GoldAnswers],
    search_stats: Optional[Mapping[str, float]] = None,
    tools: Sequence[str] = (),
) -> dict[str, float]:
    """Metrics of one batch of finished trajectories (one reward and one gold list per trajectory).

    Rates are per sample unless named otherwise:

    - ``search_r1/invalid_action_rate``: invalid actions per generated turn;
    - ``search/duplicate_query_rate``: share of the batch's queries that repeat an earlier query of
      the same batch verbatim (what a cache or in-flight dedup could have saved);
    - ``search_r1/retrieval_hit_rate``: share of samples with a gold answer (normalized) inside an
      ``<information>`` block of the response;
    - ``loss_mask/observation_fraction``: masked response tokens (search observations and invalid-action
      corrections: everything the engine did not produce) over all response tokens of the batch;
    - ``search/failure_rate``: failed over issued searches, counted on the trajectories; a value in
      ``search_stats`` (the backend's own count) takes precedence, as do all its other keys;
    - ``tool/<name>/calls_per_sample``, ``tool/<name>/failure_rate`` (failed over issued calls),
      ``tool/<name>/latency_mean_s`` and ``tool/<name>/latency_max_s`` for every tool in ``tools`` (the run's
      tools, logged even while unused) and every tool the trajectories called.

    An empty batch yields only ``search_stats``.
    """
    if not len(trajectories) == len(rewards) == len(golden_answers):
        raise ValueError(
            f"rollout_metrics needs one reward and one gold list per trajectory; got {len(trajectories)} "
            f"trajectories, {len(rewards)} rewards, {len(golden_answers)} gold lists"
        )
    metrics: dict[str, float] = {}
    if trajectories:
        metrics.update(_reward_metrics(rewards))
        metrics.update(_rollout_metrics(trajectories))
        metrics.update(_search_metrics(trajectories, golden_answers))
        metrics.update(tool_metrics(trajectories, tools))
    metrics.update(search_stats or {})
    return metrics


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _reward_metrics(rewards: Sequence[RewardBreakdown]) -> dict[str, float]:
    metrics = {
        "reward/total": fmean(r.total for r in rewards),
        "reward/exact_match": fmean(r.exact_match for r in rewards),
        "reward/format": fmean(r.format for r in rewards),
    }
    # The optional components exist for every sample of a run or for none (the reward config decides).
    for key, values in (("tool", [r.tool for r in rewards]), ("f1", [r.f1 for r in rewards])):
        present = [value for value in values if value is not None]
        if present and len(present) == len(values):
            metrics[f"reward/{key}"] = fmean(present)
    return metrics


def _rollout_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    lengths = [len(t.response_ids) for t in trajectories]
    statuses = Counter(t.status for t in trajectories)
    count = len(trajectories)
    return {
        "search_r1/turns_per_sample": fmean(t.turns for t in trajectories),
        "search_r1/answer_rate": sum(t.final_answer is not None for t in trajectories) / count,
        "search_r1/invalid_action_rate": _ratio(
            sum(t.invalid_actions for t in trajectories), sum(t.turns for t in trajectories)
        ),
        "loss_mask/observation_fraction": _ratio(sum(t.loss_mask.count(0) for t in trajectories), sum(lengths)),
        "rollout/response_len_mean": fmean(lengths),
        "rollout/response_len_max": float(max(lengths)),
        "rollout/response_len_min": float(min(lengths)),
        "rollout/truncated_fraction": statuses["truncated"] / count,
        "rollout/aborted_fraction": statuses["aborted"] / count,
    }


def _search_metrics(trajectories: Sequence[Trajectory], golden_answers: Sequence[GoldAnswers]) -> dict[str, float]:
    queries = [query for t in trajectories for query in t.queries]
    calls = sum(t.search_calls for t in trajectories)
    hits = sum(retrieval_hit(t.response_text, golds) for t, golds in zip(trajectories, golden_answers))
    return {
        "search_r1/search_calls_per_sample": calls / len(trajectories),
        "search_r1/retrieval_hit_rate": hits / len(trajectories),
        "search/duplicate_query_rate": _ratio(len(queries) - len(set(queries)), len(queries)),
        "search/failure_rate": _ratio(sum(t.search_failures for t in trajectories), calls),
    }


def tool_metrics(trajectories: Sequence[Trajectory], tools: Sequence[str]) -> dict[str, float]:
    """``tool/<name>/*`` of every tool in ``tools`` and every tool the trajectories called (training and eval)."""
    calls: dict[str, list[ToolCall]] = {name: [] for name in tools}
    for call in (call for t in trajectories for call in t.tool_calls):
        calls.setdefault(call.tool, []).append(call)
    metrics: dict[str, float] = {}
    for name, made in calls.items():
        seconds = [call.seconds for call in made]
        metrics.update(
            {
                f"tool/{name}/calls_per_sample": len(made) / len(trajectories),
                f"tool/{name}/failure_rate": _ratio(sum(call.failed for call in made), len(made)),
                f"tool/{name}/latency_mean_s": fmean(seconds) if seconds else 0.0,
                f"tool/{name}/latency_max_s": max(seconds, default=0.0),
            }
        )
    return metrics
