"""Miles hooks: generate against an SGLang-protocol server and the real retriever, reward, TIS, metrics."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from searchr1.config import to_typed
from searchr1.tools.base import ToolCall
from searchr1.rollout.trajectory import Trajectory
from searchr1.tis import ESS_FRACTION_KEY, ESS_KEY
from searchr1.trainers.miles import hooks
from searchr1.trainers.miles import generate as miles_generate
from searchr1.trainers.miles import reward_hook
from searchr1.trainers.miles import rollout_log
from searchr1.trainers.miles import runtime as miles_runtime
from searchr1.trainers.miles import samples as miles_samples
from searchr1.trainers.miles import tis_hook
from tests.support.compose import compose_config
from tests.support.miles_fakes import FakeSample
from tests.support.miles_hooks import (
    call_tis,
    chat_prompt,
    fake_miles_tracking,
    miles_reduced_tis_metrics,
    new_sample,
    tis_args,
    write_args,
)
from tests.support.scripted import fake_logprob, search_then_answer_policy
from tests.support.sglang_server import serve_fake_sglang


@pytest.fixture
async def runtime_cleanup():
    yield
    await miles_runtime.close_runtimes()


@pytest.mark.slow
async def test_generate_fills_every_field_miles_reads(tmp_path, tokenizer, retriever, runtime_cleanup):
    async with serve_fake_sglang(tokenizer, search_then_answer_policy) as fake:
        fake.weight_version = "7"
        args = write_args(tmp_path, retriever.url, fake.url)
        sample = new_sample(tokenizer)
        out = await miles_generate.generate_sample(
            args, sample, tokenizer, sampling_params={"temperature": 1.0, "top_p": 1.0}
        )
    assert out is sample
    assert sample.status is FakeSample.Status.COMPLETED
    # SGLang's meta info reaches the Sample as Miles' own generate keeps it (prefix cache, weight versions)
    first, second = (len(r["input_ids"]) for r in fake.requests)
    assert sample.weight_versions == ["7", "7"]
    assert sample.prefix_cache_info == {"cached_tokens": first, "total_prompt_tokens": first + second}
    sample.validate()
    prompt = tokenizer.encode(chat_prompt(tokenizer), add_special_tokens=False)
    p, n = len(prompt), sample.response_length
    # token-in: the first request is the prompt's ids; tokens end with exactly the response
    assert fake.requests[0]["input_ids"] == prompt
    assert sample.tokens[:p] == prompt and len(sample.tokens) == p + n
    assert tokenizer.decode(sample.tokens[p:], skip_special_tokens=False) == sample.response
    counts = sample.metadata[miles_samples.METADATA_KEY]
    assert counts["search_calls"] == 1 and counts["turns"] == 2 and counts["tool_calls"][0][0] == "search"
    assert len(sample.loss_mask) - sum(sample.loss_mask) == counts["observation_tokens"] > 0
    for i, (mask, logprob) in enumerate(zip(sample.loss_mask, sample.rollout_log_probs)):
        token = sample.tokens[p + i]
        assert logprob == (pytest.approx(fake_logprob(p + i, token)) if mask else 0.0)
    # the real retriever answered: the observation holds its top passage, the policy answers with it
    assert "<information>" in sample.response and "Paris" in sample.response
    assert sample.response.endswith("<answer>Paris</answer>")  # nothing after the closing tag is kept
    assert sample.non_generation_time > 0.0
    assert sample.reward is None  # left for the reward hook

    assert await hooks.reward(args, sample) == {"total": 1.0, "exact_match": 1.0, "format": 0.0}
    assert await hooks.reward(args, [sample, sample]) == [{"total": 1.0, "exact_match": 1.0, "format": 0.0}] * 2


async def test_engine_failure_gives_a_failed_not_aborted_sample(tmp_path, tokenizer, runtime_cleanup):
    async with serve_fake_sglang(tokenizer, search_then_answer_policy) as fake:
        fake.fail_status = 500
        args = write_args(tmp_path, "http://127.0.0.1:9", fake.url)
        sample = await miles_generate.generate_sample(args, new_sample(tokenizer), tokenizer)
    assert sample.status is FakeSample.Status.FAILED
    sample.validate()
    assert (sample.response_length, sample.loss_mask, sample.rollout_log_probs) == (1, [0], [0.0])
    assert sample.tokens[-1] == tokenizer.eos_token_id
    assert "no tokens" in sample.metadata[miles_samples.METADATA_KEY]["error"]
    assert (await hooks.reward(args, sample))["total"] == 0.0


@pytest.mark.slow
async def test_engine_failure_after_the_first_turn_trains_nothing_of_the_partial_response(
    tmp_path, tokenizer, retriever, runtime_cleanup
):
    # The first /generate answers (a search call), the retriever answers, the second /generate gets HTTP 500.
    async with serve_fake_sglang(tokenizer, search_then_answer_policy) as fake:
        fake.fail_status, fake.answer_first = 500, 1
        args = write_args(tmp_path, retriever.url, fake.url)
        sample = await miles_generate.generate_sample(args, new_sample(tokenizer), tokenizer)
    assert len(fake.requests) == 2  # the failure came after a real turn and a real search
    assert sample.status is FakeSample.Status.FAILED
    sample.validate()
    assert sample.effective_response_length == 0  # nothing of this sample is trained on
    assert (sample.response_length, sample.loss_mask, sample.rollout_log_probs) == (1, [0], [0.0])
    prompt = tokenizer.encode(chat_prompt(tokenizer), add_special_tokens=False)
    assert sample.tokens == prompt + [tokenizer.eos_token_id]
    counts = sample.metadata[miles_samples.METADATA_KEY]
    assert counts["status"] == "failed" and counts["search_calls"] == 1 and "engine" in counts["error"]
    assert (await hooks.reward(args, sample)) == {"total": 0.0, "exact_match": 0.0, "format": 0.0}


async def test_abort_by_miles_before_any_token_is_aborted(tmp_path, tokenizer, runtime_cleanup):
    async with serve_fake_sglang(tokenizer, search_then_answer_policy) as fake:
        fake.fail_status = 503  # what an aborted request looks like to the engine client: no tokens
        args = write_args(tmp_path, "http://127.0.0.1:9", fake.url)
        sample = await miles_generate.generate_sample(
            args, new_sample(tokenizer), tokenizer, engine_aborted=lambda: True
        )
    assert sample.status is FakeSample.Status.ABORTED
    sample.validate()


async def test_no_exception_escapes_generate(tmp_path, tokenizer, monkeypatch, runtime_cleanup):
    async def boom(*args, **kwargs):
        raise RuntimeError("search stack exploded")

    monkeypatch.setattr(miles_generate, "run_trajectory", boom)
    args = write_args(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    sample = await miles_generate.generate_sample(args, new_sample(tokenizer), tokenizer)
    assert sample.status is FakeSample.Status.FAILED
    assert "search stack exploded" in sample.metadata[miles_samples.METADATA_KEY]["error"]
    sample.validate()


async def test_missing_custom_config_is_a_failed_sample_naming_the_flag(tokenizer, runtime_cleanup):
    args = argparse.Namespace(sglang_router_ip="127.0.0.1", sglang_router_port=9)
    sample = await miles_generate.generate_sample(args, new_sample(tokenizer), tokenizer)
    assert sample.status is FakeSample.Status.FAILED
    assert "--custom-config-path" in sample.metadata[miles_samples.METADATA_KEY]["error"]


def trajectory(status: str) -> Trajectory:
    return Trajectory(
        prompt_ids=[1, 2],
        response_ids=[5, 6, 7],
        loss_mask=[1, 0, 1],
        rollout_logprobs=[-0.5, 0.0, -1.0],
        response_text="abc",
        turns=1,
        observation_tokens=1,
        status=status,
        tool_calls=[ToolCall("search", "q", seconds=0.25)],
    )


@pytest.mark.parametrize(
    "ours,engine_aborted,expected",
    [
        ("completed", False, "COMPLETED"),
        ("truncated", False, "TRUNCATED"),
        ("aborted", True, "ABORTED"),
        ("aborted", False, "FAILED"),
    ],
)
def test_status_is_aborted_only_for_a_real_abort(ours, engine_aborted, expected):
    sample = FakeSample()
    miles_samples.fill_sample(sample, trajectory(ours), engine_aborted=engine_aborted)
    assert sample.status is FakeSample.Status[expected]
    assert sample.non_generation_time == 0.25
    if expected == "FAILED":  # a failed trajectory's partial response is never trained on
        assert (sample.loss_mask, sample.response) == ([0], "")
    miles_samples.check_sample(sample, prompt_len=2)


def test_check_sample_rejects_misalignment():
    sample = FakeSample()
    miles_samples.fill_sample(sample, trajectory("completed"), engine_aborted=False)
    sample.rollout_log_probs = sample.rollout_log_probs[:-1]
    with pytest.raises(miles_samples.SampleInvariantError, match="differ"):
        miles_samples.check_sample(sample, prompt_len=2)
    miles_samples.fill_sample(sample, trajectory("completed"), engine_aborted=False)
    with pytest.raises(miles_samples.SampleInvariantError, match="tokens"):
        miles_samples.check_sample(sample, prompt_len=3)
    sample.rollout_log_probs[1] = -0.1
    with pytest.raises(miles_samples.SampleInvariantError, match="observation token"):
        miles_samples.check_sample(sample, prompt_len=2)


def test_sampling_params_from_miles_set_temperature_and_top_p():
    base = to_typed(compose_config([])).rollout
    assert miles_generate.rollout_config(base, {"temperature": 0.0, "top_p": 0.5}).temperature == 0.0
    assert miles_generate.rollout_config(base, {"temperature": 0.0, "top_p": 0.5}).top_p == 0.5
    assert miles_generate.rollout_config(base, None) is base


@pytest.mark.parametrize(
    "label,expected",
    [
        ({"style": "rule", "ground_truth": {"target": ["a", "b"]}}, ["a", "b"]),
        ({"target": ["x"]}, ["x"]),
        (["y"], ["y"]),
        ("z", ["z"]),
        (None, []),
    ],
)
def test_golden_answers_from_labels(label, expected):
    assert reward_hook.golden_answers(label) == expected


# --------------------------------------------------------------------------- TIS hook


def test_tis_hook_truncates_like_miles_mis_py():
    # Miles' truncate clamps to [0, upper] and ignores the lower bound: 3 -> 2, 0.25 stays 0.25.
    pg_loss, masks, metrics = call_tis(tis_args(), [[1.0, 3.0], [0.25]], [[1, 1], [1]])
    assert torch.allclose(pg_loss, torch.tensor([1.0, 2.0, 0.25]))
    assert [m.tolist() for m in masks] == [[1.0, 1.0], [1.0]]
    # per-sequence weights 1.5 and 0.25: ESS fraction (1.75^2 / (2.25 + 0.0625)) / 2, times the batch of 4
    fraction = 1.75**2 / (1.5**2 + 0.25**2) / 2
    assert metrics[ESS_FRACTION_KEY].shape == (3,)
    assert torch.allclose(metrics[ESS_FRACTION_KEY], torch.full((3,), fraction))
    assert torch.allclose(metrics[ESS_KEY], torch.full((3,), fraction * 4))


def test_tis_hook_masked_tokens_get_zero_weight():
    pg_loss, _, _ = call_tis(tis_args(), [[3.0, 3.0]], [[1, 0]])
    assert pg_loss.tolist() == [2.0, 0.0]


def test_tis_hook_off_leaves_the_loss_and_still_reports_ess():
    pg_loss, masks, metrics = call_tis(tis_args(use_tis=False), [[1.0, 3.0]], [[1, 1]])
    assert pg_loss.tolist() == [1.0, 1.0]
    assert ESS_KEY in metrics and ESS_FRACTION_KEY in metrics


def test_tis_hook_mask_mode_returns_rejection_masks():
    pg_loss, masks, _ = call_tis(tis_args(tis_mode="mask"), [[0.25, 1.5, 3.0]], [[1, 1, 1]])
    assert masks[0].tolist() == [0.0, 1.0, 0.0]
    assert pg_loss.tolist() == [0.0, 1.5, 0.0]


def test_tis_hook_emits_the_same_keys_for_an_all_masked_micro_batch():
    _, _, full = call_tis(tis_args(), [[1.0, 3.0]], [[1, 1]])
    _, _, empty = call_tis(tis_args(), [[1.0]], [[0]])
    assert set(full) == set(empty)


@pytest.mark.parametrize("per_token", [False, True])
def test_tis_ess_reported_by_miles_is_right_whatever_share_of_samples_is_masked(per_token):
    # Identical policies: every TIS weight is 1 and the ESS fraction is exactly 1, however many
    # samples are fully masked (FAILED samples, one masked token each). 8 samples in 2 micro-batches.
    args = tis_args(global_batch_size=8, calculate_per_token_loss=per_token)
    live, failed = [1.0, 1.0, 1.0], [1.0]
    micro_batches = [
        ([live, live, failed, live], [[1, 0, 1], [1, 1, 1], [0], [1, 1, 0]]),
        ([live, failed, live, live], [[1, 1, 1], [0], [0, 1, 1], [1, 1, 1]]),
    ]
    reported = miles_reduced_tis_metrics(args, micro_batches, per_token=per_token)
    assert reported[ESS_FRACTION_KEY] == pytest.approx(1.0)
    assert reported[ESS_KEY] == pytest.approx(8.0)  # in samples of the optimizer batch
    assert reported["tis/weight_mean"] == pytest.approx(1.0)
    assert reported["tis/ratio_mean"] == pytest.approx(1.0)


def test_tis_ess_with_masked_samples_equals_the_ess_of_the_live_samples():
    # Different policies: the reported fraction is the micro-batch fraction over its live samples,
    # weighted by micro-batch size, exactly as it would be with no masked sample at all.
    args = tis_args(global_batch_size=4)
    with_failed = [([[1.0, 3.0], [0.25], [1.0]], [[1, 1], [1], [0]])]
    alone = [([[1.0, 3.0], [0.25]], [[1, 1], [1]])]
    reported = miles_reduced_tis_metrics(args, with_failed, per_token=False)
    fraction = 1.75**2 / (1.5**2 + 0.25**2) / 2
    assert reported[ESS_FRACTION_KEY] == pytest.approx(fraction)
    assert miles_reduced_tis_metrics(args, alone, per_token=False)[ESS_FRACTION_KEY] == pytest.approx(fraction)


def test_tis_hook_rejects_rejection_sampling():
    with pytest.raises(RuntimeError, match="use_rs"):
        call_tis(tis_args(use_rs=True), [[1.0]], [[1]])


# --------------------------------------------------------------------------- rollout log hook
def test_wandb_keys_land_on_miles_step_prefixes():
    assert rollout_log.wandb_key("reward/exact_match") == "rollout/reward/exact_match"
    assert rollout_log.wandb_key("search_r1/turns_per_sample") == "rollout/search_r1/turns_per_sample"
    assert rollout_log.wandb_key("rollout/truncated_fraction") == "rollout/truncated_fraction"
    assert rollout_log.wandb_key("tis/effective_sample_size") == "rollout/tis/effective_sample_size"


def test_append_metrics_writes_the_local_trainer_format(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rollout_log.append_metrics(path, 3, {"reward/total": 0.5})
    rollout_log.append_metrics(path, 4, {"reward/total": 0.75})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"step": 3, "reward/total": 0.5},
        {"step": 4, "reward/total": 0.75},
    ]


def test_sample_trajectory_round_trips_the_counts():
    sample = FakeSample()
    miles_samples.fill_sample(sample, trajectory("completed"), engine_aborted=False)
    traj = miles_samples.sample_trajectory(sample)
    assert (traj.prompt_ids, traj.response_ids, traj.loss_mask) == ([1, 2], [5, 6, 7], [1, 0, 1])
    assert (traj.turns, traj.status, traj.tool_seconds) == (1, "completed", 0.25)


def filled_sample(status: str, reward: dict) -> FakeSample:
    sample = FakeSample(label={"ground_truth": {"target": ["Paris"]}}, reward=reward)
    miles_samples.fill_sample(sample, trajectory(status), engine_aborted=False)
    return sample


def test_log_rollout_logs_our_keys_on_rollout_step_and_keeps_miles_logging(tmp_path, monkeypatch):
    logged = fake_miles_tracking(monkeypatch)
    args = write_args(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    samples = [
        filled_sample("completed", {"total": 1.0, "exact_match": 1.0, "format": 0.0}),
        filled_sample("truncated", {"total": 0.0, "exact_match": 0.0, "format": 0.0}),
    ]
    assert rollout_log.log_rollout(3, args, samples, {}, 12.0) is False
    ((metrics, step_key),) = logged
    assert step_key == "rollout/step" and metrics["rollout/step"] == 30
    assert metrics["rollout/reward/exact_match"] == 0.5
    assert metrics["rollout/search_r1/turns_per_sample"] == 1.0
    assert metrics["rollout/loss_mask/observation_fraction"] == pytest.approx(1 / 3)
    assert metrics["rollout/truncated_fraction"] == 0.5
    assert all(key.startswith(rollout_log.MILES_STEP_PREFIXES) for key in metrics)
    (line,) = (tmp_path / "metrics.jsonl").read_text().splitlines()
    row = json.loads(line)
    assert row["step"] == 3 and row["reward/exact_match"] == 0.5 and row["search_r1/turns_per_sample"] == 1.0


def test_log_rollout_never_raises_into_miles(tmp_path):
    args = write_args(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    assert rollout_log.log_rollout(0, args, [object()], {}, 1.0) is False


def test_search_stats_of_several_runtimes_add_up_instead_of_overwriting():
    # Two event loops in one rollout process: 3 calls with 1 failure, then 1 call with none.
    first = {
        "search/calls": 3.0,
        "search/failure_rate": 1 / 3,
        "search/cache_hit_rate": 0.0,
        "search/retries": 2.0,
        "search/latency_mean_s": 0.2,
        "search/latency_max_s": 0.5,
        "search/breaker_open": 1.0,
    }
    second = {
        "search/calls": 1.0,
        "search/failure_rate": 0.0,
        "search/cache_hit_rate": 1.0,
        "search/retries": 1.0,
        "search/latency_mean_s": 0.6,
        "search/latency_max_s": 0.6,
        "search/breaker_open": 0.0,
    }
    combined = miles_runtime.combine_search_stats([first, second])
    assert combined == pytest.approx(
        {
            "search/calls": 4.0,
            "search/failure_rate": 0.25,
            "search/cache_hit_rate": 0.25,
            "search/retries": 3.0,
            "search/latency_mean_s": 0.3,
            "search/latency_max_s": 0.6,
            "search/breaker_open": 1.0,
        }
    )
    assert miles_runtime.combine_search_stats([]) == {}


def test_search_stats_and_reset_sums_every_runtime_of_the_process(monkeypatch):
    class CountingSearch:
        def __init__(self, calls: float) -> None:
            self.calls = calls

        def stats_and_reset(self) -> dict[str, float]:
            calls, self.calls = self.calls, 0.0
            return {"search/calls": calls}

    monkeypatch.setattr(
        miles_runtime,
        "_RUNTIMES",
        {(1, 1): SimpleNamespace(tools=CountingSearch(2.0)), (2, 1): SimpleNamespace(tools=CountingSearch(1.0))},
    )
    assert miles_runtime.search_stats_and_reset() == {"search/calls": 3.0}
    assert miles_runtime.search_stats_and_reset() == {"search/calls": 0.0}


def test_the_hooks_module_is_a_facade_over_one_module_per_concern():
    # Miles loads searchr1.trainers.miles.hooks.<name> (command.py); each name is its concern module's function.
    assert (hooks.generate, hooks.generate_legacy) == (miles_generate.generate, miles_generate.generate_legacy)
    assert hooks.reward is reward_hook.reward and hooks.tis_weights is tis_hook.tis_weights
    assert (hooks.log_rollout, hooks.log_eval) == (rollout_log.log_rollout, rollout_log.log_eval)
    tree = ast.parse(Path(hooks.__file__).read_text())
    defined = [node for node in tree.body if not isinstance(node, (ast.Expr, ast.ImportFrom, ast.Assign))]
    assert not defined, "hooks.py only re-exports; code goes to the module of its concern"
