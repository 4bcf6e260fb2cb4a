"""The embedded trainer's health actions: rollback restores the last healthy weights at a lower lr, stop
ends the run with a checkpoint, and firings land in metrics.jsonl."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from searchr1.config import to_typed
from searchr1.config.schema import HealthConfig, HealthRuleConfig
from searchr1.metrics_file import read_metrics
from searchr1.run import RunContext
from searchr1.trainers.local.health_guard import HealthGuard
from searchr1.trainers.local.train import train
from tests.support.compose import compose_config
from tests.support.data import TINY_ROLLOUT

HEALTHY = {"health/think_repetition": 0.0}
COLLAPSED = {"health/think_repetition": 0.9}


def _guard(**overrides) -> tuple[HealthGuard, torch.nn.Linear]:
    policy = torch.nn.Linear(2, 1, bias=False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=0.1)
    cfg = dataclasses.replace(
        HealthConfig(), think_repetition=HealthRuleConfig(threshold=0.5, action="rollback"), **overrides
    )
    return HealthGuard(cfg, policy, optimizer, alert=False), policy


def _update(policy: torch.nn.Linear, value: float) -> None:
    with torch.no_grad():
        policy.weight.fill_(value)


def test_rollback_restores_the_weights_the_last_healthy_step_started_from() -> None:
    guard, policy = _guard()  # step 1 starts from the initial weights
    _update(policy, 1.0)  # step 1's update (review follows each step's update)
    assert guard.review(1, dict(HEALTHY)) == "continue"
    _update(policy, 2.0)  # step 2 started from 1.0 and rolled out healthily
    assert guard.review(2, dict(HEALTHY)) == "continue"
    _update(policy, 3.0)  # step 3 started from 2.0 and its rollout collapsed
    metrics = dict(COLLAPSED)
    assert guard.review(3, metrics) == "rollback"
    assert policy.weight.tolist() == [[1.0, 1.0]]  # what step 2 started from: the last healthy rollout's weights
    assert guard.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert metrics["health/fired/think_repetition"] == 1.0
    assert metrics["health/rollbacks"] == 1.0 and metrics["health/lr_scale"] == 0.5


def test_rollbacks_compound_the_lr_factor_then_stop() -> None:
    guard, policy = _guard(max_rollbacks=2)
    verdicts = [guard.review(step, dict(COLLAPSED)) for step in (1, 2, 3)]
    assert verdicts == ["rollback", "rollback", "stop"]
    assert guard.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_a_warn_only_breach_still_counts_as_healthy_for_rollback() -> None:
    guard, policy = _guard()
    _update(policy, 1.0)
    assert guard.review(1, dict(HEALTHY)) == "continue"
    _update(policy, 2.0)
    # step 2 (from 1.0): zero-variance groups past their warn limit, a sparse-reward run's normal state
    assert guard.review(2, {**HEALTHY, "health/zero_variance_groups": 1.0}) == "continue"
    _update(policy, 3.0)
    assert guard.review(3, dict(COLLAPSED)) == "rollback"
    assert policy.weight.tolist() == [[1.0, 1.0]]  # step 2 vouched for its starting weights


def test_an_update_kl_rollback_returns_to_the_weights_its_step_started_from() -> None:
    """The update KL judges the weights the update produced: the step's own starting weights, whose
    rollout was healthy, are where the rollback goes (not one step further back)."""
    guard, policy = _guard(update_kl=HealthRuleConfig(threshold=0.1, action="rollback"))
    _update(policy, 1.0)
    assert guard.review(1, {**HEALTHY, "health/update_kl": 0.01}) == "continue"
    _update(policy, 2.0)  # step 2 started from 1.0, rolled out healthily, and its update was destructive
    metrics = {**HEALTHY, "health/update_kl": 3.0}
    assert guard.review(2, metrics) == "rollback"
    assert policy.weight.tolist() == [[1.0, 1.0]]
    assert metrics["health/fired/update_kl"] == 1.0


def test_without_rollback_rules_no_snapshot_is_kept() -> None:
    policy = torch.nn.Linear(2, 1)
    guard = HealthGuard(HealthConfig(), policy, torch.optim.AdamW(policy.parameters()), alert=False)
    assert guard.review(1, dict(COLLAPSED)) == "continue"  # warn only
    assert guard._current is None


TINY = [*TINY_ROLLOUT, "logger.mode=disabled"]


@pytest.mark.slow
def test_a_rule_that_always_fires_rolls_back_then_stops_the_run_with_a_checkpoint(tmp_path) -> None:
    # Entropy is always below 1e9 nats: the rule fires every step, whatever the model does.
    cfg = compose_config(
        TINY
        + [
            "trainer.steps=5",
            "health.entropy.threshold=1e9",
            "health.entropy.action=rollback",
            "health.max_rollbacks=1",
            "trainer.checkpoint_every=0",
        ]
    )
    ctx = RunContext.build(cfg, to_typed(cfg), tmp_path / "run")
    train(ctx)
    rows = read_metrics(ctx.run_dir)
    assert [r["step"] for r in rows] == [1, 2]  # step 1 rolled back, step 2 stopped the run
    assert all(r["health/fired/entropy"] == 1.0 for r in rows)
    assert [r["health/rollbacks"] for r in rows] == [1.0, 1.0]
    assert rows[0]["health/lr_scale"] == 0.5
    assert {
        "health/think_repetition",
        "health/zero_variance_groups",
        "health/mismatch_k3_kl",
        "health/sampled_neg_logprob",
    } <= set(rows[0])
    assert (ctx.run_dir / "checkpoints" / "LATEST").read_text().strip() == "step_000002.pt"


# --------------------------------------------------------------------------- a destructive learning rate
GOOD, BAD = [11, 12, 13, 14, 15, 16], [21, 22, 23, 24, 25, 26]
PROMPT = [5, 17, 42, 7]


def _step(policy, optimizer, guard: HealthGuard, step: int) -> tuple[dict[str, float], str]:
    """One GRPO step on a fixed group (the first response right, the second wrong), with the engine's
    logprobs taken from the current policy, as the embedded engine's are; then the guard's review."""
    from searchr1.config.schema import GrpoConfig, LocalTrainerConfig, TisConfig
    from searchr1.trainers.local.grpo import Group, group_advantages, grpo_update
    from searchr1.trainers.local.logprobs import score_responses

    with torch.no_grad():
        engine = score_responses(policy, PROMPT, [GOOD, BAD], chunk_tokens=0).logprobs
    group = Group(
        prompt_ids=PROMPT,
        responses=[GOOD, BAD],
        loss_masks=[[1] * 6, [1] * 6],
        rollout_logprobs=[row.tolist() for row in engine],
        advantages=group_advantages([1.0, 0.0], 2),
    )
    metrics = grpo_update(
        policy,
        None,
        [group],
        optimizer,
        LocalTrainerConfig(grad_clip=1e9),
        GrpoConfig(kl_loss_coef=0.0),
        TisConfig(),
        temperature=1.0,
        pad_token_id=0,
    )
    metrics["health/correct_logprob"] = float(engine[0].mean())
    return metrics, guard.review(step, metrics)


@pytest.mark.slow
def test_a_destructive_learning_rate_is_caught_by_entropy_and_rolled_back():
    """lr 100x what this toy trains at: the policy's entropy collapses within a few steps (and the right
    answer starts getting less likely with it); the entropy rule (under a quarter of step 1's entropy) rolls
    back to the last healthy weights at lr x 0.01, and the restored weights explore again."""
    from tests.support.local_trainer import tiny_llama

    policy = tiny_llama(vocab_size=64).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=0.3)  # 100x the 3e-3 that trains this toy
    cfg = dataclasses.replace(
        HealthConfig(), entropy=HealthRuleConfig(threshold=0.25, action="rollback"), rollback_lr_factor=0.01
    )
    guard = HealthGuard(cfg, policy, optimizer, alert=False)
    history = [_step(policy, optimizer, guard, step) for step in range(1, 9)]
    entropies = [m["train/entropy"] for m, _ in history]
    verdicts = [v for _, v in history]
    assert entropies[0] > 3.5  # log(64) = 4.16: the random policy explores
    fired = verdicts.index("rollback")
    assert fired >= 1 and entropies[fired] < entropies[0] / 4  # a collapse a few steps in, caught when it shows
    assert history[fired][0]["health/fired/entropy"] == 1.0
    assert entropies[fired + 1] > 1.0 and entropies[fired + 1] > entropies[fired] + 0.5  # exploring again
    assert guard.rollbacks >= 1
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.3 * 0.01**guard.rollbacks)


# --------------------------------------------------------------------------- the real model at 100x the lr
DESTRUCTIVE = [
    "trainer.lr=1e-2",  # 100x trainer=local's default
    "trainer.steps=2",
    "trainer.prompts_per_step=2",
    "rollout.n_samples_per_prompt=4",
    "trainer.threads=1",
    "trainer.checkpoint_every=0",
    "logger.mode=disabled",
]
UPDATE_KL_LIMIT = HealthConfig().update_kl.threshold


def _destructive_run(tmp_path, *overrides: str) -> list[dict]:
    cfg = compose_config(DESTRUCTIVE + list(overrides))
    typed = to_typed(cfg)
    assert typed.trainer.init_from == typed.model.warm_start is not None  # SmolLM2 from its shipped warm start
    ctx = RunContext.build(cfg, typed, tmp_path / "run")
    train(ctx)
    return read_metrics(ctx.run_dir)


@pytest.mark.slow
def test_a_100x_learning_rate_fires_update_kl_a_step_before_reward_halves(tmp_path) -> None:
    """Warn only: the first update at lr 1e-2 breaks the warm start, and the update KL says so at step 1,
    while step 1's reward is still the warm start's; the next rollout has lost half its EM and format."""
    first, second = _destructive_run(tmp_path)
    assert first["health/fired/update_kl"] == 1.0 and first["health/update_kl"] > UPDATE_KL_LIMIT
    assert first["reward/exact_match"] > 0 and first["reward/format"] > 0
    assert second["reward/exact_match"] <= first["reward/exact_match"] / 2
    assert second["reward/format"] <= first["reward/format"] / 2
    assert second["health/empty_think_rate"] > 0.5  # the collapse: no reasoning, no valid action


@pytest.mark.slow
def test_a_100x_learning_rate_is_rolled_back_to_the_warm_start_and_the_run_recovers(tmp_path) -> None:
    """The same run with update_kl on rollback: the warm start's weights come back at lr x 0.01 (the
    default lr), so step 2 rolls out a healthy policy and its update stays under the limit. Without the
    restore, step 2 would roll out the broken weights (the test above: empty think, reward halved)."""
    first, second = _destructive_run(tmp_path, "health.update_kl.action=rollback", "health.rollback_lr_factor=0.01")
    assert first["health/fired/update_kl"] == 1.0 and first["health/rollbacks"] == 1.0
    assert first["health/lr_scale"] == pytest.approx(0.01)
    assert second["health/update_kl"] < UPDATE_KL_LIMIT and "health/fired/update_kl" not in second
    assert second["health/empty_think_rate"] < 0.5 and second["search_r1/answer_rate"] > 0.5
    assert second["reward/format"] > first["reward/format"] / 2
    assert second["health/rollbacks"] == 1.0


# --------------------------------------------------------------------------- the quickstart as shipped
@pytest.mark.slow
def test_the_quickstart_fires_no_health_rule(quickstart_run) -> None:
    """`python -m searchr1` as shipped (SmolLM2 from its warm start, 2 steps of 2 prompts x 5 samples) is a
    healthy run, and no rule may call it otherwise. It fired two at step 2: the entropy rule's absolute 0.05
    (train/entropy 0.087 -> 0.035; the warm start samples that low from the start) and zero_variance_groups
    (both of the step's 2 groups scored alike)."""
    rows = read_metrics(quickstart_run)
    assert [row["step"] for row in rows] == [1, 2]
    assert [key for row in rows for key in row if key.startswith("health/fired/")] == []
