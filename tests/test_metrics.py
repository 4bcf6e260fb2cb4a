"""Rollout metrics over hand-built trajectories: every key, its value, and the merge with search stats."""

from __future__ import annotations

import pytest

from searchr1.config.schema import RewardConfig
from searchr1.metrics import rollout_metrics
from searchr1.reward import RewardBreakdown, score_group
from searchr1.rollout.trajectory import Trajectory
from searchr1.tools.base import ToolCall
from tests.support.reward_cases import good, searched

TEAM_KEYS = {
    "search_r1/turns_per_sample",
    "search_r1/search_calls_per_sample",
    "reward/exact_match",
    "reward/format",
    "reward/total",
    "loss_mask/observation_fraction",
    "search/failure_rate",
    "search/duplicate_query_rate",
    "search_r1/retrieval_hit_rate",
    "search_r1/answer_rate",
    "search_r1/invalid_action_rate",
    "rollout/truncated_fraction",
    "rollout/aborted_fraction",
    "rollout/response_len_mean",
    "rollout/response_len_max",
    "rollout/response_len_min",
}


def _trajectory(text: str, *, generated: int, observed: int = 0, **fields) -> Trajectory:
    traj = Trajectory(prompt_ids=[1, 2, 3], response_text=text, observation_tokens=observed, **fields)
    traj.append_generated(list(range(generated)), [-0.5] * generated)
    traj.append_inserted([7] * observed)
    return traj


def _batch() -> tuple[list[Trajectory], list[list[str]]]:
    trajectories = [
        # searched, found Paris in the observation, answered right
        _trajectory(
            searched("Paris", "Paris"),
            generated=30,
            observed=20,
            turns=2,
            tool_calls=[ToolCall("search", "capital of France")],
            final_answer="Paris",
        ),
        # searched twice (once failing, once repeating the first sample's query), answered wrong
        _trajectory(
            searched("London", "Berlin"),
            generated=40,
            observed=40,
            turns=3,
            tool_calls=[ToolCall("search", "capital of France", failed=True), ToolCall("search", "france capital")],
            final_answer="London",
        ),
        # one invalid action, then ran out of budget
        _trajectory("<think>hmm</think> rambling", generated=50, turns=2, invalid_actions=1, status="truncated"),
        # the engine aborted the first turn
        _trajectory("<think>", generated=20, turns=1, status="aborted"),
    ]
    golds = [["Paris"], ["Paris"], ["Paris"], ["Paris"]]
    return trajectories, golds


def test_every_team_metric_with_hand_computed_values():
    trajectories, golds = _batch()
    cfg = RewardConfig(kind="em_format", format_score=0.2)
    rewards = score_group([t.response_text for t in trajectories], golds, cfg)
    assert [r.total for r in rewards] == pytest.approx([1.2, 0.2, 0.0, 0.0])

    metrics = rollout_metrics(trajectories, rewards, golds)

    per_tool = {f"tool/search/{key}" for key in ("calls_per_sample", "failure_rate", "latency_mean_s", "latency_max_s")}
    assert set(metrics) == TEAM_KEYS | per_tool  # tis/* come from searchr1.tis
    assert all(isinstance(value, float) for value in metrics.values())
    assert metrics["search_r1/turns_per_sample"] == 2.0  # (2 + 3 + 2 + 1) / 4
    assert metrics["search_r1/search_calls_per_sample"] == 0.75
    assert metrics["reward/total"] == pytest.approx(1.4 / 4)
    assert metrics["reward/exact_match"] == 0.25
    assert metrics["reward/format"] == pytest.approx(0.1)
    lengths = [50, 80, 50, 20]
    assert metrics["loss_mask/observation_fraction"] == 60 / sum(lengths)
    assert metrics["rollout/response_len_mean"] == 50.0
    assert metrics["rollout/response_len_max"] == 80.0
    assert metrics["rollout/response_len_min"] == 20.0
    assert metrics["rollout/truncated_fraction"] == 0.25
    assert metrics["rollout/aborted_fraction"] == 0.25
    assert metrics["search_r1/invalid_action_rate"] == 1 / 8
    assert metrics["search_r1/answer_rate"] == 0.5
    assert metrics["search/duplicate_query_rate"] == 1 / 3
    assert metrics["search/failure_rate"] == 1 / 3
    assert metrics["search_r1/retrieval_hit_rate"] == 0.25  # only the first observation mentions Paris


def test_per_tool_metrics_count_each_tool_and_list_unused_ones():
    trajectories = [
        _trajectory(
            "",
            generated=1,
            tool_calls=[
                ToolCall("search", "q", seconds=0.5),
                ToolCall("calculator", "1/0", failed=True, seconds=0.01),
                ToolCall("calculator", "2+2", seconds=0.03),
            ],
        ),
        _trajectory("", generated=1, tool_calls=[ToolCall("search", "r", failed=True, seconds=1.5)]),
    ]
    rewards = [RewardBreakdown(0.0, 0.0, 0.0)] * 2
    metrics = rollout_metrics(trajectories, rewards, [["x"], ["x"]], tools=["search", "calculator", "python"])
    assert metrics["tool/search/calls_per_sample"] == 1.0
    assert metrics["tool/search/failure_rate"] == 0.5
    assert metrics["tool/search/latency_mean_s"] == 1.0
    assert metrics["tool/search/latency_max_s"] == 1.5
    assert metrics["tool/calculator/calls_per_sample"] == 1.0
    assert metrics["tool/calculator/failure_rate"] == 0.5
    assert metrics["tool/calculator/latency_max_s"] == 0.03
    assert metrics["tool/python/calls_per_sample"] == 0.0 and metrics["tool/python/failure_rate"] == 0.0
    assert metrics["search_r1/search_calls_per_sample"] == 1.0  # search keys keep their meaning
    assert metrics["search/failure_rate"] == 0.5


def test_search_stats_are_merged_and_take_precedence():
    trajectories, golds = _batch()
    rewards = [RewardBreakdown(0.0, 0.0, 0.0)] * len(trajectories)
    stats = {"search/failure_rate": 0.5, "search/cache_hit_rate": 0.25, "search/credits_used": 3.0}
    metrics = rollout_metrics(trajectories, rewards, golds, search_stats=stats)
    assert metrics["search/failure_rate"] == 0.5
    assert metrics["search/cache_hit_rate"] == 0.25
    assert metrics["search/credits_used"] == 3.0
    assert metrics["search_r1/turns_per_sample"] == 2.0


def test_retrieval_hit_uses_the_sample_s_own_golds_normalized():
    trajectories = [
        _trajectory(searched("x", "the EIFFEL tower, Paris"), generated=5, turns=2),
        _trajectory(searched("x", "the EIFFEL tower, Paris"), generated=5, turns=2),
        _trajectory(good("Eiffel Tower"), generated=5, turns=1),  # the answer block is not retrieval
    ]
    golds = [["Eiffel Tower"], ["Big Ben"], ["Eiffel Tower"]]
    rewards = [RewardBreakdown(0.0, 0.0, 0.0)] * 3
    assert rollout_metrics(trajectories, rewards, golds)["search_r1/retrieval_hit_rate"] == pytest.approx(1 / 3)


def test_duplicate_queries_count_across_the_batch_verbatim():
    trajectories = [
        _trajectory("", generated=1, tool_calls=[ToolCall("search", q) for q in ["a", "a", "b"]]),
        _trajectory("", generated=1, tool_calls=[ToolCall("search", q) for q in ["b", "A", "c"]]),
    ]
    rewards = [RewardBreakdown(0.0, 0.0, 0.0)] * 2
    metrics = rollout_metrics(trajectories, rewards, [["x"], ["x"]])
    assert metrics["search/duplicate_query_rate"] == 2 / 6


def test_no_searches_no_turns_no_tokens_give_zero_rates():
    trajectories = [Trajectory(prompt_ids=[1])]
    metrics = rollout_metrics(trajectories, [RewardBreakdown(0.0, 0.0, 0.0)], [["x"]])
    assert metrics["search/duplicate_query_rate"] == 0.0
    assert metrics["search/failure_rate"] == 0.0
    assert metrics["search_r1/invalid_action_rate"] == 0.0
    assert metrics["loss_mask/observation_fraction"] == 0.0
    assert metrics["rollout/response_len_min"] == 0.0


def test_empty_batch_returns_only_search_stats():
    assert rollout_metrics([], [], []) == {}
    assert rollout_metrics([], [], [], search_stats={"search/calls": 0.0}) == {"search/calls": 0.0}


def test_mismatched_lengths_are_rejected():
    trajectories, golds = _batch()
    with pytest.raises(ValueError, match="one reward and one gold list per trajectory"):
        rollout_metrics(trajectories, [RewardBreakdown(0.0, 0.0, 0.0)], golds)
