"""Miles hooks after something failed: an engine failure on a sample's first turn (one log line, like
any later turn, and a per-step count), and an eval after a health stop (logged as skipped, not as 0)."""

from __future__ import annotations

import logging
import sys
import types

import pytest

from searchr1.config import to_typed
from searchr1.rollout.trajectory import Trajectory
from searchr1.trainers.miles import hooks
from searchr1.trainers.miles import generate as miles_generate
from searchr1.trainers.miles import rollout_log
from searchr1.trainers.miles import runtime as miles_runtime
from searchr1.trainers.miles import samples as miles_samples
from searchr1.trainers.miles import stop_file
from searchr1.trainers.miles.custom_config import build_custom_config, write_custom_config
from tests.support.compose import compose_config
from tests.support.miles_fakes import FakeSample, miles_args
from tests.support.scripted import search_then_answer_policy, smollm2_tokenizer
from tests.support.sglang_server import serve_fake_sglang


@pytest.fixture(scope="module")
def tokenizer():
    return smollm2_tokenizer()


@pytest.fixture
async def runtime_cleanup():
    yield
    await miles_runtime.close_runtimes()


def hook_args(tmp_path, router_url: str = "http://127.0.0.1:1"):
    cfg = to_typed(compose_config(["trainer=miles", "model=smollm2-135m", "backend=local", "reward=em"]))
    data = build_custom_config(cfg, run_dir=tmp_path, run_name="test", retriever_urls=["http://127.0.0.1:9"])
    return miles_args(write_custom_config(data, tmp_path / "miles_custom_config.yaml"), router_url=router_url)


def question() -> FakeSample:
    return FakeSample(group_index=0, index=0, prompt="What is the capital of France?", label=["Paris"])


async def test_an_engine_failure_on_the_first_turn_is_one_warning_line(tmp_path, tokenizer, caplog, runtime_cleanup):
    """Issue 27, item 15: it logged ERROR with a full traceback; a later turn's failure logs only the
    engine client's warning line, and so does the first turn's now."""
    caplog.set_level(logging.INFO)
    async with serve_fake_sglang(tokenizer, search_then_answer_policy) as fake:
        fake.fail_status = 500
        sample = await miles_generate.generate_sample(hook_args(tmp_path, fake.url), question(), tokenizer)
    assert sample.status is FakeSample.Status.FAILED and sample.loss_mask == [0]
    assert "no tokens" in sample.metadata[miles_samples.METADATA_KEY]["error"]
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.exc_info) for r in loud] == [("WARNING", None)], caplog.text
    assert "HTTP 500" in loud[0].getMessage()


def test_each_step_counts_its_failed_samples(tmp_path):
    args = hook_args(tmp_path)
    failed, aborted, answered = question(), question(), question()
    miles_samples.fail_sample(failed, [1, 2], 0, "the engine returned no tokens (aborted)")
    miles_samples.fail_sample(aborted, [1, 2], 0, "aborted by Miles before any token", aborted=True)  # Miles' own abort
    done = Trajectory(prompt_ids=[1, 2], response_ids=[5, 6], loss_mask=[1, 1], rollout_logprobs=[-0.5, -0.5])
    miles_samples.fill_sample(answered, done, engine_aborted=False)
    metrics = rollout_log.rollout_log_metrics([failed, aborted, answered, failed], args)
    assert metrics[rollout_log.FAILED_SAMPLES_KEY] == 2.0
    assert (
        rollout_log.wandb_key(rollout_log.FAILED_SAMPLES_KEY) == "rollout/failed_samples"
    )  # plotted against rollout/step


@pytest.fixture
def miles_eval_skips(monkeypatch) -> list:
    """Miles' ``log_eval_skip(rollout_id, args, reason)`` (metrics.py), recording its calls."""
    skips: list = []
    names = ("miles", "miles.ray", "miles.ray.rollout", "miles.ray.rollout.metrics")
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["miles.ray.rollout.metrics"].log_eval_skip = lambda rollout_id, args, reason: skips.append(
        (rollout_id, reason)
    )
    return skips


def test_an_eval_after_a_health_stop_is_logged_as_skipped_not_as_zero(tmp_path, miles_eval_skips):
    """Issue 27, item 12: after a stop every generate call returns a FAILED sample, so Miles' own logging
    would write eval/<source> = 0 for every set. The hook takes over (returns True) only then."""
    args = hook_args(tmp_path)
    data = {"nq": {"rewards": [0.0, 0.0]}, "hotpotqa": {"rewards": [0.0]}}
    assert hooks.log_eval(4, args, data, None) is False and miles_eval_skips == []  # Miles logs it as usual
    stop_file.request_stop(args, tmp_path, "health: rule think_repetition fired at step 4")
    assert hooks.log_eval(4, args, data, None) is True
    assert miles_eval_skips == [(4, "health_stop")]  # Miles logs eval/skipped_health_stop at eval/step
