"""Training health: each indicator against a hand-computed value, and the rules' firing logic."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
import torch

from searchr1.config.checks import ConfigError
from searchr1.config.schema import HealthConfig, HealthRuleConfig
from searchr1.health import (
    FIRED_PREFIX,
    RULES,
    HealthMonitor,
    Rule,
    contiguous_groups,
    correct_logprob,
    empty_think_rate,
    mismatch_metrics,
    repeated_ngram_share,
    rollout_health,
    sampled_neg_logprob,
    think_repetition,
    update_kl,
    warn,
    zero_variance_groups,
)
from searchr1.reward import RewardBreakdown
from searchr1.rollout.trajectory import Trajectory


def _unmatched(config: HealthConfig, rules: tuple[Rule, ...]) -> tuple[set[str], set[str]]:
    """The health.* rule fields no rule evaluates (silently never fire), and the rules no field configures."""
    fields, names = set(config.rules()), [rule.name for rule in rules]
    assert len(names) == len(set(names)), "a rule listed twice"
    return fields - set(names), set(names) - fields


def test_every_health_rule_field_has_a_rule_and_every_rule_a_field():
    assert _unmatched(HealthConfig(), RULES) == (set(), set())


def test_a_rule_field_without_a_rule_is_found():
    extended = dataclasses.make_dataclass(
        "Extended",
        [("new_rule", HealthRuleConfig, dataclasses.field(default_factory=HealthRuleConfig))],
        bases=(HealthConfig,),
        kw_only=True,
    )
    assert _unmatched(extended(), RULES) == ({"new_rule"}, set())
    assert _unmatched(HealthConfig(), (*RULES, Rule("orphan", ("health/x",), False, "fix it"))) == (set(), {"orphan"})


def _traj(text: str, logprobs: list[float], mask: list[int]) -> Trajectory:
    return Trajectory(
        prompt_ids=[1],
        response_ids=list(range(len(mask))),
        loss_mask=mask,
        rollout_logprobs=logprobs,
        response_text=text,
    )


def _reward(em: float) -> RewardBreakdown:
    return RewardBreakdown(total=em, exact_match=em, format=0.0)


# --------------------------------------------------------------------------- indicators
def test_repeated_ngram_share_counts_repeats_of_earlier_ngrams() -> None:
    # 3-grams of "a b c a b c": abc, bca, cab, abc -> 4 n-grams, 3 distinct -> 1/4 repeat
    assert repeated_ngram_share("a b c a b c".split()) == 0.25
    assert repeated_ngram_share("a b".split()) is None
    assert repeated_ngram_share("x x x x x".split()) == pytest.approx(2 / 3)  # xxx three times


def test_think_repetition_joins_a_responses_think_blocks_and_averages_responses() -> None:
    looping = "<think>a b c</think><search>q</search><information>a b c a b c</information><think>a b c</think>"
    # think text "a b c a b c" -> 0.25 (the information block does not count); a fresh one -> 0.0;
    # a response without thinking is left out of the mean
    responses = [looping, "<think>one two three four</think><answer>x</answer>", "<answer>x</answer>"]
    assert think_repetition(responses) == pytest.approx((0.25 + 0.0) / 2)
    assert think_repetition(["<answer>x</answer>"]) == 0.0


def test_empty_think_rate_counts_blank_and_missing_blocks() -> None:
    responses = ["<think> </think><answer>a</answer>", "<answer>a</answer>", "<think>why</think>", "<think>\n</think>"]
    assert empty_think_rate(responses) == 0.75


def test_sampled_neg_logprob_averages_model_tokens_only() -> None:
    trajectories = [_traj("", [-1.0, 0.0, -2.0], [1, 0, 1]), _traj("", [-0.5], [1])]
    assert sampled_neg_logprob(trajectories) == pytest.approx((1.0 + 2.0 + 0.5) / 3)


def test_zero_variance_groups_is_the_share_of_groups_with_one_reward_value() -> None:
    groups = contiguous_groups([0, 0, 1, 0, 1, 1, 0.5, 0.5], 2)
    assert groups == [[0, 0], [1, 0], [1, 1], [0.5, 0.5]]
    assert zero_variance_groups(groups) == 0.75


def test_correct_logprob_reads_exact_match_samples_model_tokens() -> None:
    trajectories = [_traj("", [-0.2, 0.0, -0.4], [1, 0, 1]), _traj("", [-3.0], [1])]
    assert correct_logprob(trajectories, [_reward(1.0), _reward(0.0)]) == pytest.approx(-0.3)
    assert correct_logprob(trajectories, [_reward(0.0), _reward(0.0)]) is None


def test_rollout_health_gathers_the_rollout_side_indicators() -> None:
    trajectories = [_traj("<think>a b c a b c</think>", [-1.0], [1]), _traj("<answer>x</answer>", [-3.0], [1])]
    metrics = rollout_health(trajectories, [_reward(1.0), _reward(0.0)], [[1.0, 0.0]])
    assert metrics == {
        "health/think_repetition": 0.25,
        "health/empty_think_rate": 0.5,
        "health/sampled_neg_logprob": 2.0,
        "health/zero_variance_groups": 0.0,
        "health/correct_logprob": -1.0,
    }
    assert "health/correct_logprob" not in rollout_health(trajectories, [_reward(0.0)] * 2, [[0.0, 0.0]])


def test_mismatch_metrics_abs_logprob_and_k3_kl_on_model_tokens() -> None:
    train = [torch.tensor([-1.0, -5.0, -2.0])]
    rollout = [torch.tensor([-1.5, 0.0, -2.0])]
    mask = [torch.tensor([1, 0, 1])]
    # model tokens: log ratios 0.5 and 0.0; k3 = e^r - 1 - r
    metrics = mismatch_metrics(train, rollout, mask)
    assert metrics["health/mismatch_abs_logprob"] == pytest.approx(0.25)
    assert metrics["health/mismatch_k3_kl"] == pytest.approx((math.exp(0.5) - 1.5) / 2)
    assert mismatch_metrics(train, rollout, [torch.zeros(3)])["health/mismatch_k3_kl"] == 0.0


def test_update_kl_is_k3_of_before_vs_after_on_model_tokens() -> None:
    before = [torch.tensor([-1.0, -5.0, -2.0])]
    after = [torch.tensor([-2.0, 0.0, -2.0])]
    mask = [torch.tensor([1, 0, 1])]
    # model tokens: log ratios after - before = -1 and 0; k3 = e^r - 1 - r (samples came from "before")
    assert update_kl(before, after, mask)["health/update_kl"] == pytest.approx((math.exp(-1.0) - 1 + 1) / 2)
    assert update_kl(before, before, mask)["health/update_kl"] == 0.0


# --------------------------------------------------------------------------- rules
def _cfg(**overrides) -> HealthConfig:
    return dataclasses.replace(HealthConfig(), **overrides)


def test_a_rule_fires_past_its_threshold_and_records_a_firing_metric() -> None:
    monitor = HealthMonitor(_cfg())
    quiet = monitor.check(1, {"health/think_repetition": 0.1, "tis/effective_sample_size_fraction": 0.9})
    assert quiet.firings == [] and quiet.breached == []
    loud = monitor.check(2, {"health/think_repetition": 0.7, "tis/effective_sample_size_fraction": 0.3})
    assert sorted(f.rule.name for f in loud.firings) == ["ess_fraction", "think_repetition"]
    assert loud.metrics[FIRED_PREFIX + "think_repetition"] == 1.0
    assert loud.breached == ["ess_fraction", "think_repetition"]
    firing = next(f for f in loud.firings if f.rule.name == "ess_fraction")
    assert firing.message().startswith(
        "health: rule ess_fraction fired at step 2: "
        "tis/effective_sample_size_fraction=0.3 < 0.5 (health.ess_fraction.action=warn)"
    )


def test_patience_needs_consecutive_breaches() -> None:
    monitor = HealthMonitor(_cfg(patience=2))
    fired = [
        bool(monitor.check(s, {"rollout/truncated_fraction": v}).firings)
        for s, v in enumerate([0.9, 0.1, 0.9, 0.9, 0.9, 0.9], 1)
    ]
    assert fired == [False, False, False, True, False, True]


def test_off_rules_and_a_disabled_monitor_never_fire() -> None:
    off = _cfg(truncation=HealthRuleConfig(threshold=0.5, action="off"))
    assert HealthMonitor(off).check(1, {"rollout/truncated_fraction": 1.0}).breached == []
    disabled = HealthMonitor(_cfg(enabled=False)).check(1, {"rollout/truncated_fraction": 1.0})
    assert disabled.firings == [] and disabled.breached == ["truncation"]  # still says what was past its limit


def test_entropy_rule_prefers_the_trainers_entropy_over_the_proxy() -> None:
    monitor = HealthMonitor(_cfg())
    assert monitor.check(1, {"train/entropy": 0.4, "health/sampled_neg_logprob": 2.0}).firings == []
    check = monitor.check(2, {"train/entropy": 0.01, "health/sampled_neg_logprob": 2.0})
    assert [(f.rule.name, f.key) for f in check.firings] == [("entropy", "train/entropy")]
    proxy = HealthMonitor(_cfg())
    proxy.check(1, {"health/sampled_neg_logprob": 0.4})
    assert proxy.check(2, {"health/sampled_neg_logprob": 0.01}).firings[0].key == "health/sampled_neg_logprob"


# train/entropy of `python -m searchr1` (SmolLM2 from its shipped warm start), steps 1 and 2, measured here:
# low from the start (the warm start samples at 0.03-0.08 nats/token), and an absolute 0.05 called step 2 a collapse.
QUICKSTART_ENTROPY = [0.0868, 0.0350]


def test_entropy_is_judged_against_the_runs_first_step_not_an_absolute_level() -> None:
    monitor = HealthMonitor(_cfg())
    assert [monitor.check(step, {"train/entropy": v}).firings for step, v in enumerate(QUICKSTART_ENTROPY, 1)] == [
        [],
        [],
    ]
    (firing,) = monitor.check(3, {"train/entropy": 0.01}).firings  # under a quarter of step 1's
    assert firing.baseline == 0.0868 and "< 0.0217 (0.25 x its first step's 0.0868)" in firing.message()
    cold = HealthMonitor(_cfg())  # a cold policy that collapses from 3 nats to 0.5
    assert [bool(cold.check(step, {"train/entropy": v}).firings) for step, v in enumerate([3.0, 2.5, 0.5], 1)] == [
        False,
        False,
        True,
    ]


def test_a_resumed_run_keeps_the_entropy_baseline_of_its_first_step() -> None:
    monitor = HealthMonitor(_cfg())
    monitor.remember_baselines([{"step": 0, "eval/exact_match": 0.3}, {"step": 1, "train/entropy": 0.4}])
    assert monitor.check(3, {"train/entropy": 0.05}).firings[0].baseline == 0.4
    monitor.reset()  # a rollback: the baseline is the run's start and stays
    assert monitor.check(4, {"train/entropy": 0.05}).firings[0].baseline == 0.4


def test_observations_that_dominate_the_response_warn_with_the_remedy() -> None:
    monitor = HealthMonitor(_cfg())
    assert monitor.check(1, {"loss_mask/observation_fraction": 0.7}).firings == []  # Search-R1's healthy 0.4-0.7
    (firing,) = monitor.check(2, {"loss_mask/observation_fraction": 0.95}).firings
    assert firing.rule.name == "observation_fraction" and firing.action == "warn"
    message = firing.message()
    assert "loss_mask/observation_fraction=0.95 > 0.9" in message
    assert all(remedy in message for remedy in ("search.topk", "rollout.max_obs_tokens", "rollout.max_turns"))


def test_change_rates_are_step_over_step() -> None:
    monitor = HealthMonitor(_cfg())
    assert monitor.check(1, {"rollout/response_len_mean": 100.0, "health/correct_logprob": -0.5}).metrics == {}
    second = monitor.check(2, {"rollout/response_len_mean": 250.0})  # no correct sample: no logprob change
    assert second.metrics == {"health/response_len_change": 1.5, FIRED_PREFIX + "response_len_change": 1.0}
    third = monitor.check(3, {"rollout/response_len_mean": 50.0, "health/correct_logprob": -2.0})
    assert third.metrics["health/response_len_change"] == -0.8
    assert third.metrics["health/correct_logprob_change"] == -1.5
    assert {f.rule.name for f in third.firings} == {"correct_logprob_drop"}


def test_a_rules_own_patience_overrides_health_patience() -> None:
    # Over the quickstart's 2 groups the zero-variance share is 0 or 1 from step to step on a healthy run.
    monitor = HealthMonitor(_cfg())
    fired = [
        bool(monitor.check(s, {"health/zero_variance_groups": v}).firings) for s, v in enumerate([1, 0, 1, 1, 1], 1)
    ]
    assert fired == [False, False, False, False, True]
    with pytest.raises(ConfigError, match="health.truncation.patience=0"):
        _cfg(truncation=HealthRuleConfig(threshold=0.5, patience=0))


def test_warn_logs_one_line_with_value_and_remedy(caplog: pytest.LogCaptureFixture) -> None:
    once = _cfg(zero_variance_groups=HealthRuleConfig(threshold=0.8))
    firing = HealthMonitor(once).check(7, {"health/zero_variance_groups": 0.9}).firings[0]
    with caplog.at_level(logging.WARNING, logger="searchr1.health"):
        warn(firing, alert=False)
    assert caplog.messages == [
        "health: rule zero_variance_groups fired at step 7: health/zero_variance_groups=0.9 > 0.8 "
        "(health.zero_variance_groups.action=warn); remedy: most groups carry no learning signal: raise "
        "rollout.n_samples_per_prompt or use prompts of mixed difficulty"
    ]


def test_warn_alerts_an_online_wandb_run_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    class FakeRun:
        def __init__(self, offline: bool) -> None:
            self.offline, self.alerts = offline, []

        def alert(self, **kwargs) -> None:
            self.alerts.append(kwargs)

    firing = HealthMonitor(_cfg()).check(2, {"rollout/truncated_fraction": 0.9}).firings[0]
    for offline, alert, expected in ((False, True, 1), (True, True, 0), (False, False, 0)):
        run = FakeRun(offline)
        monkeypatch.setattr(wandb, "run", run)
        warn(firing, alert=alert)
        assert len(run.alerts) == expected
    online = FakeRun(False)
    monkeypatch.setattr(wandb, "run", online)
    warn(firing, alert=True)
    assert online.alerts == [{"title": "searchr1 health: truncation", "text": firing.message(), "level": "WARN"}]


def test_config_names_the_bad_key() -> None:
    with pytest.raises(ConfigError, match=r"health\.entropy\.action='stpo'.*did you mean 'stop'"):
        _cfg(entropy=HealthRuleConfig(threshold=0.1, action="stpo"))
    with pytest.raises(ConfigError, match="health.patience=0"):
        _cfg(patience=0)
