"""Training health on Miles, with Miles-shaped inputs: the indicators flow through the rollout-log and TIS
hooks under Miles' step prefixes, and a stop rule ends the run through the stop file the hooks honour."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from searchr1.config.schema import HealthConfig
from searchr1.health import RULES, HealthMonitor
from searchr1.rollout.trajectory import Trajectory
from searchr1.trainers.miles import generate as miles_generate
from searchr1.trainers.miles import rollout_log
from searchr1.trainers.miles import runtime as miles_runtime
from searchr1.trainers.miles import samples as miles_samples
from searchr1.trainers.miles import stop_file
from tests.support.miles_fakes import FakeSample
from tests.support.scripted import smollm2_tokenizer
from tests.support.miles_hooks import call_tis, chat_prompt, fake_miles_tracking, tis_args, write_args

LOOPING = "<think>a b c a b c</think><answer>Paris</answer>"


def _sample(group: int, text: str, em: float) -> FakeSample:
    traj = Trajectory(
        prompt_ids=[1, 2],
        response_ids=[5, 6],
        loss_mask=[1, 1],
        rollout_logprobs=[-1.0, -3.0],
        response_text=text,
        turns=1,
        final_answer="Paris",
        status="completed",
    )
    sample = FakeSample(
        group_index=group,
        label={"ground_truth": {"target": ["Paris"]}},
        reward={"total": em, "exact_match": em, "format": 0.0},
    )
    miles_samples.fill_sample(sample, traj, engine_aborted=False)
    return sample


def test_log_rollout_logs_health_under_rollout_step(tmp_path, monkeypatch):
    logged = fake_miles_tracking(monkeypatch)
    args = write_args(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    # group 0 all right (no signal), group 1 mixed
    samples = [_sample(0, LOOPING, 1.0), _sample(0, LOOPING, 1.0), _sample(1, LOOPING, 1.0), _sample(1, "x", 0.0)]
    assert rollout_log.log_rollout(1, args, samples, {}, 1.0) is False
    ((metrics, _),) = logged
    assert metrics["rollout/health/zero_variance_groups"] == 0.5
    assert metrics["rollout/health/think_repetition"] == 0.25
    assert metrics["rollout/health/empty_think_rate"] == 0.25
    assert metrics["rollout/health/sampled_neg_logprob"] == 2.0  # the entropy proxy
    assert metrics["rollout/health/correct_logprob"] == -2.0
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert row["health/zero_variance_groups"] == 0.5 and not any(k.startswith("health/fired/") for k in row)


def test_a_stop_rule_saves_then_ends_the_miles_run(tmp_path, monkeypatch):
    logged = fake_miles_tracking(monkeypatch)
    sentinel = tmp_path / "save_now"
    args = write_args(
        tmp_path,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        "health.think_repetition.threshold=0.1",
        "health.think_repetition.action=stop",
    )
    args.save_trigger_sentinel = str(sentinel)
    rollout_log._MONITORS.clear()
    samples = [_sample(0, LOOPING, 1.0), _sample(0, "x", 0.0)]
    assert rollout_log.log_rollout(4, args, samples, {}, 1.0) is False  # this rollout still trains ...
    assert logged[0][0]["rollout/health/fired/think_repetition"] == 1.0
    assert sentinel.exists()  # ... and Miles saves a checkpoint after its step
    assert "rule think_repetition fired at step 4" in (tmp_path / stop_file.HEALTH_STOP_FILE).read_text()
    with pytest.raises(rollout_log.HealthStopError, match="think_repetition.*removes .*health_stop when it launches"):
        rollout_log.log_rollout(5, args, samples, {}, 1.0)  # the next rollout ends the job before training


async def test_generate_returns_at_once_after_a_stop(tmp_path):
    tokenizer = smollm2_tokenizer()
    args = write_args(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")  # nothing listens there
    (tmp_path / stop_file.HEALTH_STOP_FILE).write_text("stop")
    sample = FakeSample(group_index=0, index=0, prompt=chat_prompt(tokenizer), label=["Paris"])
    try:
        sample = await miles_generate.generate_sample(args, sample, tokenizer)
    finally:
        await miles_runtime.close_runtimes()
    assert sample.status is FakeSample.Status.FAILED and sample.loss_mask == [0]
    assert sample.metadata[miles_samples.METADATA_KEY]["error"] == "a health rule stopped the run"


def test_tis_hook_reports_the_train_rollout_mismatch():
    # train probs 1.0 and 3.0 against rollout logprob 0: log ratios 0 and ln 3 on the two model tokens
    _, _, metrics = call_tis(tis_args(), [[1.0, 3.0]], [[1, 1]])
    assert torch.allclose(metrics["health/mismatch_abs_logprob"], torch.full((2,), math.log(3) / 2))
    assert torch.allclose(metrics["health/mismatch_k3_kl"], torch.full((2,), (3 - 1 - math.log(3)) / 2))


# What docs/miles.md says about the rules on Miles, checked against what the hooks give the monitor.
NOT_ON_MILES = {"ess_fraction", "mismatch_kl", "update_kl"}


def test_the_rules_miles_can_evaluate_are_the_ones_docs_miles_names(tmp_path):
    args = write_args(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    samples = [_sample(0, LOOPING, 1.0), _sample(0, "x", 0.0)]
    monitor = HealthMonitor(HealthConfig())
    seen: dict[str, float] = {}
    for rollout_id in (1, 2):  # the change rates need a previous rollout
        metrics = rollout_log.rollout_log_metrics(samples, args)
        metrics.update(monitor.check(rollout_id, metrics).metrics)
        seen.update(metrics)
    evaluable = {rule.name for rule in RULES if any(key in seen for key in rule.keys)}
    assert evaluable == {rule.name for rule in RULES} - NOT_ON_MILES
    doc = (Path(__file__).parents[1] / "docs" / "miles.md").read_text()
    paragraph = doc.split("So the rules that can fire on Miles are", 1)[1].split("\n\n", 1)[0]
    can_fire, never_fire = paragraph.split("Setting", 1)
    assert set(re.findall(r"`(\w+)`", can_fire)) == evaluable
    assert NOT_ON_MILES <= set(re.findall(r"`(\w+)`", never_fire))
