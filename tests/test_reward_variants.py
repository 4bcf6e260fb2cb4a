"""Reward variants: F1 and the bounded tool-use term, hand-computed, bounded, and scored the same by both trainers.

The em / em_format / searchr1_qa_em_format cases stay in tests/test_reward.py (unchanged by these variants).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from searchr1.config import ConfigError, to_typed
from searchr1.config.schema import RewardConfig
from searchr1.eval.scoring import score_sample
from searchr1.metrics import rollout_metrics
from searchr1.reward import RewardBreakdown, score_group, score_response
from searchr1.rollout.trajectory import Trajectory
from searchr1.tools.base import ToolCall
from searchr1.trainers.local.train import score_trajectories
from searchr1.trainers.miles import hooks
from searchr1.trainers.miles import reward_hook
from searchr1.trainers.miles import rollout_log
from searchr1.trainers.miles import runtime as miles_runtime
from searchr1.trainers.miles import samples as miles_samples
from tests.support.compose import compose_config
from tests.support.miles_fakes import FakeSample
from tests.support.miles_hooks import fake_miles_tracking, write_args
from tests.support.reward_cases import good, searched

F1 = RewardConfig(kind="f1")


# --------------------------------------------------------------------------- f1
@pytest.mark.parametrize(
    ("response", "golds", "expected"),
    [
        # "barack obama" vs "obama": precision 1/2, recall 1/1 -> F1 2/3; not an exact match
        ("<answer>Barack Obama</answer>", ["Obama"], RewardBreakdown(2 / 3, 0.0, 0.0, f1=2 / 3)),
        # normalized equal: F1 1 and EM 1
        (good("the Eiffel Tower"), ["Eiffel Tower"], RewardBreakdown(1.0, 1.0, 0.0, f1=1.0)),
        # the best gold counts: "new york city" vs "york" (2/4) and vs "new york" (precision 2/3, recall 1: 4/5)
        ("<answer>New York City</answer>", ["York", "New York"], RewardBreakdown(0.8, 0.0, 0.0, f1=0.8)),
        # "paris france" vs "paris": 2/3, and a well-formed response earns nothing more under f1
        (searched("Paris, France", "Paris"), ["Paris"], RewardBreakdown(2 / 3, 0.0, 0.0, f1=2 / 3)),
        # no answer, or no shared token: 0
        ("I think it is Paris.", ["Paris"], RewardBreakdown(0.0, 0.0, 0.0, f1=0.0)),
        (good("London"), ["Paris"], RewardBreakdown(0.0, 0.0, 0.0, f1=0.0)),
        # the last <answer> block is the answer, as for em
        ("<answer>London</answer> no, <answer>Paris</answer>", ["Paris"], RewardBreakdown(1.0, 1.0, 0.0, f1=1.0)),
    ],
)
def test_f1_hand_computed(response, golds, expected):
    reward = score_response(response, golds, F1)
    assert reward.total == pytest.approx(expected.total, abs=1e-12)
    assert (reward.exact_match, reward.format, reward.tool) == (expected.exact_match, 0.0, None)
    assert reward.f1 == pytest.approx(expected.f1, abs=1e-12) and reward.total == reward.f1


@pytest.mark.parametrize(
    "response", [good("Barack Obama"), "<answer>obama</answer>", "no answer", searched("the Obama", "x")]
)
def test_f1_reward_is_the_evals_f1(response):
    traj = Trajectory(prompt_ids=[1], response_text=response)
    evaluated = score_sample(traj, ["Obama", "Barack H. Obama"], "nq", 0, F1)
    assert score_response(response, ["Obama", "Barack H. Obama"], F1).f1 == evaluated.f1


# --------------------------------------------------------------------------- tool term
EM_TOOL = RewardConfig(kind="em", tool_bonus=0.2, no_tool_penalty=0.1)
EM_FORMAT_TOOL = RewardConfig(kind="em_format", format_score=0.2, tool_bonus=0.3, no_tool_penalty=0.1)
F1_TOOL = RewardConfig(kind="f1", tool_bonus=0.1)


@pytest.mark.parametrize(
    ("cfg", "response", "calls", "total", "tool"),
    [
        # em: 1 + 0.2 / 1 - 0.1 / 0 + 0.2 / 0 - 0.1; not answering is penalized as well
        (EM_TOOL, searched("Paris", "Paris"), 1, 1.2, 0.2),
        (EM_TOOL, "<answer>Paris</answer>", 0, 0.9, -0.1),
        (EM_TOOL, searched("London", "Paris"), 2, 0.2, 0.2),
        (EM_TOOL, good("London"), 0, -0.1, -0.1),
        (EM_TOOL, "no answer at all", 0, -0.1, -0.1),
        # em_format: EM + format + tool; a bonus once per response, however many calls
        (EM_FORMAT_TOOL, searched("Paris", "Paris"), 3, 1.0 + 0.2 + 0.3, 0.3),
        (EM_FORMAT_TOOL, "<answer>Paris</answer>", 0, 1.0 + 0.0 - 0.1, -0.1),
        (EM_FORMAT_TOOL, searched("London", "Paris"), 1, 0.0 + 0.2 + 0.3, 0.3),
        # f1: F1 + tool (bonus only: no penalty configured)
        (F1_TOOL, "<answer>Barack Obama</answer>", 1, 2 / 3 + 0.1, 0.1),
        (F1_TOOL, "<answer>Barack Obama</answer>", 0, 2 / 3, 0.0),
    ],
)
def test_tool_term_hand_computed(cfg, response, calls, total, tool):
    golds = ["Obama"] if cfg.kind == "f1" else ["Paris"]
    reward = score_response(response, golds, cfg, tool_calls=calls)
    assert reward.total == pytest.approx(total, abs=1e-12)
    assert str(reward.tool) == str(tool)  # 0.0, never -0.0, in logs and Miles' reward dict
    assert reward.total == pytest.approx(
        (reward.exact_match if reward.f1 is None else reward.f1) + reward.format + tool, abs=1e-12
    )


# Among our kinds, the correct answers that score least and the wrong ones that score most.
CORRECT = ["<answer>Paris</answer>", "text <answer>Paris</answer> more text", good("Paris"), searched("Paris", "x")]
WRONG = ["<answer>London</answer>", good("London"), searched("London", "Paris"), "no answer"]


@given(
    kind=st.sampled_from(["em", "em_format", "f1"]),
    bonus=st.floats(0.0, 1.0),
    penalty=st.floats(0.0, 1.0),
    fmt=st.floats(0.0, 1.0),
    tag=st.floats(0.0, 1.0),
)
def test_tool_term_never_lets_a_wrong_answer_outscore_a_correct_one(kind, bonus, penalty, fmt, tag):
    shaping = {"format_score": fmt, "answer_tag_score": tag} if kind == "em_format" else {}
    try:
        cfg = RewardConfig(kind=kind, tool_bonus=bonus, no_tool_penalty=penalty, **shaping)
    except ConfigError:
        assert bonus + penalty + (max(fmt, tag) if kind == "em_format" else 0.0) >= 1.0 - 1e-12  # refused: at the bound
        return
    worst_correct = min(score_response(r, ["Paris"], cfg, tool_calls=0).total for r in CORRECT)
    best_wrong = max(score_response(r, ["Paris"], cfg, tool_calls=calls).total for r in WRONG for calls in (0, 1))
    assert worst_correct > best_wrong


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"kind": "em", "tool_bonus": 0.6, "no_tool_penalty": 0.4}, "must stay below 1"),
        ({"kind": "em_format", "format_score": 0.5, "tool_bonus": 0.5}, "must stay below 1"),
        ({"kind": "em_format", "answer_tag_score": 0.7, "no_tool_penalty": 0.3}, "must stay below 1"),
        ({"kind": "searchr1_qa_em_format", "tool_bonus": 0.1}, "no effect with reward.kind=searchr1_qa_em_format"),
        ({"kind": "em", "tool_bonus": -0.1}, "reward.tool_bonus"),
        ({"kind": "em", "no_tool_penalty": 1.5}, "reward.no_tool_penalty"),
        ({"kind": "f1", "format_score": 0.2}, "reward.format_score=0.2 has no effect"),
    ],
)
def test_config_refuses_unbounded_or_ignored_tool_terms(settings, match):
    with pytest.raises(ConfigError, match=match):
        RewardConfig(**settings)


def test_a_tool_term_needs_the_count_and_no_tool_term_ignores_it():
    with pytest.raises(ValueError, match="tool_calls count"):
        score_response(good("Paris"), ["Paris"], EM_TOOL)
    plain = RewardConfig(kind="em")
    assert score_response(good("Paris"), ["Paris"], plain, tool_calls=0) == score_response(
        good("Paris"), ["Paris"], plain
    )
    assert score_response(good("Paris"), ["Paris"], plain).tool is None


def test_score_group_passes_each_count_to_its_response():
    rewards = score_group([good("Paris"), good("Paris")], [["Paris"], ["Paris"]], EM_TOOL, tool_calls=[0, 2])
    assert [r.total for r in rewards] == [pytest.approx(0.9), pytest.approx(1.2)]
    with pytest.raises(ValueError, match="tool-call counts"):
        score_group([good("Paris")], [["Paris"]], EM_TOOL, tool_calls=[1, 1])


# --------------------------------------------------------------------------- group options
@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("f1", RewardConfig(kind="f1")),
        ("em+tool", RewardConfig(kind="em", tool_bonus=0.2)),
    ],
)
def test_group_options(option, expected):
    assert to_typed(compose_config([f"reward={option}"])).reward == expected


# --------------------------------------------------------------------------- both trainers
VARIANTS = {
    "em": ["reward.kind=em"],
    "em+format": ["reward.kind=em_format", "reward.format_score=0.2"],
    "f1": ["reward.kind=f1"],
    "em+tool": ["reward.kind=em", "reward.tool_bonus=0.2", "reward.no_tool_penalty=0.1"],
    "em+format+tool": ["reward.kind=em_format", "reward.format_score=0.2", "reward.no_tool_penalty=0.3"],
    "f1+tool": ["reward.kind=f1", "reward.tool_bonus=0.1", "reward.no_tool_penalty=0.1"],
}
RESPONSES = [good("Paris"), searched("Paris, France", "Paris"), "<answer>London</answer>", "no answer"]
CALLS = [[], [ToolCall("search", "capital of France")], [ToolCall("search", "q", failed=True), ToolCall("search", "r")]]


def _trajectories() -> list[Trajectory]:
    """Every response with every count of calls (a failed call is still a well-formed one)."""
    return [
        Trajectory(prompt_ids=[1, 2], response_ids=[5, 6], loss_mask=[1, 1], rollout_logprobs=[-0.5, -0.5],
                   response_text=response, turns=1 + len(calls), tool_calls=list(calls))
        for response, calls in itertools.product(RESPONSES, CALLS)
    ]  # fmt: skip


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_both_trainers_score_every_variant_identically(variant, tmp_path, monkeypatch):
    args = write_args(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", *VARIANTS[variant])
    trajectories = _trajectories()
    golds = [["Paris"]] * len(trajectories)
    local = score_trajectories(trajectories, golds, miles_runtime.hook_settings(args).reward)

    samples = []
    for traj in trajectories:
        sample = FakeSample(prompt="the chat prompt", label={"ground_truth": {"target": ["Paris"]}})
        miles_samples.fill_sample(sample, traj, engine_aborted=False)
        samples.append(sample)
    miles = await hooks.reward(args, samples)
    assert miles == [reward_hook.reward_dict(r) for r in local]
    assert len({r.total for r in local}) >= 2  # the samples are told apart

    # what Miles logs from those dicts is what the embedded trainer logs
    logged = fake_miles_tracking(monkeypatch)
    for sample, value in zip(samples, miles):
        sample.reward = value
    rollout_log.log_rollout(1, args, samples, {}, 1.0)
    ((metrics, _),) = logged
    ours = rollout_metrics(trajectories, local, golds)
    reward_keys = {key for key in ours if key.startswith("reward/")}
    assert reward_keys >= {"reward/total", "reward/exact_match", "reward/format"}
    assert ("reward/tool" in reward_keys) == ("tool" in variant)
    assert ("reward/f1" in reward_keys) == variant.startswith("f1")
    assert {key: metrics[f"rollout/{key}"] for key in reward_keys} == {key: ours[key] for key in reward_keys}


async def test_an_unscored_sample_is_scored_with_its_calls(tmp_path, monkeypatch):
    """Miles never scores an aborted sample; the rollout log scores it with the same count."""
    args = write_args(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", *VARIANTS["em+tool"])
    trajectories = _trajectories()
    logged = fake_miles_tracking(monkeypatch)
    samples = []
    for traj in trajectories:
        sample = FakeSample(label={"ground_truth": {"target": ["Paris"]}})
        miles_samples.fill_sample(sample, traj, engine_aborted=False)
        samples.append(sample)  # reward left None
    rollout_log.log_rollout(1, args, samples, {}, 1.0)
    ((metrics, _),) = logged
    local = score_trajectories(trajectories, [["Paris"]] * len(trajectories), miles_runtime.hook_settings(args).reward)
    assert metrics["rollout/reward/tool"] == pytest.approx(sum(r.tool or 0.0 for r in local) / len(local))
    assert metrics["rollout/reward/total"] == pytest.approx(sum(r.total for r in local) / len(local))


def test_a_sample_our_generate_never_filled_is_refused_a_tool_term():
    sample = FakeSample(response=good("Paris"), label=["Paris"])
    assert reward_hook.tool_call_count(sample) is None
    with pytest.raises(ValueError, match="tool_calls count"):
        reward_hook.score_sample(sample, EM_TOOL)
    assert reward_hook.score_sample(sample, RewardConfig(kind="em")) == {
        "total": 1.0,
        "exact_match": 1.0,
        "format": 0.0,
    }
