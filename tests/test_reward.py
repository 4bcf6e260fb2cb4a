"""Reward: reference parity with Search-R1 (hand-derived table) and our config-driven kinds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from searchr1.config.checks import ConfigError
from searchr1.config.schema import RewardConfig
from searchr1.reward import (
    RewardBreakdown,
    em_format_score,
    em_score,
    exact_match,
    extract_answer,
    is_valid_format,
    is_valid_sequence,
    normalize_answer,
    retrieval_hit,
    score_group,
    score_response,
    strip_special_tail,
    subem_score,
    substring_exact_match,
)
from tests.support.reward_cases import (
    EXTRACT_CASES,
    FMT,
    FORMAT_CASES,
    MATCH_CASES,
    NORMALIZE_CASES,
    REF_FF,
    REF_RS,
    REF_SF,
    SCORE_CASES,
    SEQUENCE_CASES,
    SR1_PROMPT,
    ScoreCase,
    good,
    searched,
)

EM = RewardConfig(kind="em")
EM_FORMAT = RewardConfig(kind="em_format", format_score=FMT)
ORIGINAL = RewardConfig(
    kind="searchr1_qa_em_format",
    structure_format_score=REF_SF,
    final_format_score=REF_FF,
    retrieval_score=REF_RS,
)


def _approx(value: float):
    return pytest.approx(value, abs=1e-12)


# --------------------------------------------------------------------------- reference functions
@pytest.mark.parametrize(("text", "expected"), NORMALIZE_CASES)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(("prediction", "golds", "em", "subem"), MATCH_CASES)
def test_exact_and_substring_match(prediction, golds, em, subem):
    assert exact_match(prediction, golds) == em
    assert substring_exact_match(prediction, golds) == subem


@pytest.mark.parametrize(("text", "last", "reference"), EXTRACT_CASES)
def test_extract_answer(text, last, reference):
    assert extract_answer(text) == last
    assert extract_answer(text, min_matches=2) == reference


def test_extract_answer_rejects_zero_min_matches():
    with pytest.raises(ValueError, match="min_matches"):
        extract_answer("<answer>x</answer>", min_matches=0)


@pytest.mark.parametrize(("response", "ours", "reference"), FORMAT_CASES)
def test_format_checks(response, ours, reference):
    assert is_valid_format(response) is ours
    assert is_valid_sequence("<|im_start|>assistant\n" + response) is reference


@pytest.mark.parametrize(("text", "valid"), SEQUENCE_CASES)
def test_reference_sequence_needs_assistant_marker(text, valid):
    assert is_valid_sequence(text) is valid


@pytest.mark.parametrize("case", SCORE_CASES, ids=lambda c: c.name)
def test_reference_scores(case: ScoreCase):
    text = case.prompt + case.response
    truth = {"target": case.golds}
    assert em_score(text, truth) == case.ref_em
    assert em_format_score(
        text, truth, structure_format_score=REF_SF, final_format_score=REF_FF, retrieval_score=REF_RS
    ) == _approx(case.ref_em_format)


def test_reference_em_score_parameters():
    text = SR1_PROMPT + good("London")
    assert em_score(text, {"target": ["Paris"]}, format_score=0.3) == 0.3
    assert em_score(SR1_PROMPT + good("Paris"), {"target": ["Paris"]}, score=2.0) == 2.0
    # no answer at all -> 0 whatever format_score says
    assert em_score(good("Paris"), {"target": ["Paris"]}, format_score=0.3) == 0.0
    # a bare list or string is accepted as the target itself
    assert em_score(SR1_PROMPT + good("Paris"), ["Paris"]) == 1.0
    assert em_score(SR1_PROMPT + good("Paris"), "Paris") == 1.0


def test_reference_subem_score():
    text = SR1_PROMPT + good("Paris, France")
    assert em_score(text, {"target": ["Paris"]}) == 0.0
    assert subem_score(text, {"target": ["Paris"]}) == 1.0
    assert subem_score(text, {"target": ["Lyon"]}, format_score=0.1) == 0.1


def test_reference_em_format_ignores_format_score():
    """The original accepts format_score and never uses it (why Miles' format reward is a no-op)."""
    for response in (good("London"), good("Paris"), "junk", searched("x", "Paris")):
        text = SR1_PROMPT + response
        assert em_format_score(text, {"target": ["Paris"]}, format_score=0.9) == em_format_score(
            text, {"target": ["Paris"]}
        )
    # all defaults zero: the reward is pure EM
    assert em_format_score(SR1_PROMPT + good("London"), {"target": ["Paris"]}, format_score=0.2) == 0.0


def test_reference_em_format_custom_score():
    text = SR1_PROMPT + good("Paris") + "<|im_end|>"
    assert em_format_score(text, {"target": ["Paris"]}, structure_format_score=0.25, score=2.0) == 1.75


def test_retrieval_hit_wraps_a_bare_string():
    text = searched("London", "Berlin")
    assert retrieval_hit(text, "Paris") is False  # not the character-wise quirk of the reference
    assert retrieval_hit(text, ["Berlin"]) is True
    assert retrieval_hit(good("Paris"), ["Paris"]) is False


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("abc<|im_end|>", "abc"),
        ("abc <|im_end|>\n<|endoftext|>  ", "abc"),
        ("abc</s>", "abc"),
        ("abc<|a b|>", "abc<|a b|>"),
        ("abc|>", "abc|>"),
        ("<|im_end|>", ""),
        ("a <|im_end|> b", "a <|im_end|> b"),
    ],
)
def test_strip_special_tail(text, stripped):
    assert strip_special_tail(text) == stripped


# --------------------------------------------------------------------------- our kinds
@pytest.mark.parametrize("case", SCORE_CASES, ids=lambda c: c.name)
def test_score_response_kinds(case: ScoreCase):
    em = score_response(case.response, case.golds, EM, prompt_text=case.prompt)
    assert em == RewardBreakdown(total=case.em, exact_match=case.em, format=0.0)

    em_format = score_response(case.response, case.golds, EM_FORMAT, prompt_text=case.prompt)
    assert em_format.total == _approx(case.em_format)
    assert em_format.exact_match == case.em
    assert em_format.format in (0.0, FMT)

    original = score_response(case.response, case.golds, ORIGINAL, prompt_text=case.prompt)
    assert original.total == _approx(case.ref_em_format)
    assert original.exact_match == case.ref_em


@pytest.mark.parametrize("case", SCORE_CASES, ids=lambda c: c.name)
def test_breakdown_sums_to_total(case: ScoreCase):
    for cfg in (EM, EM_FORMAT, ORIGINAL):
        reward = score_response(case.response, case.golds, cfg, prompt_text=case.prompt)
        assert reward.total == _approx(reward.exact_match + reward.format)


@pytest.mark.parametrize("format_score", [0.0, 0.1, 0.2, 0.37, 1.0])
@pytest.mark.parametrize(
    "response",
    [
        good("London"),
        good("London") + "<|im_end|>",
        searched("London", "Paris"),
        searched("London", "Berlin") + "<|endoftext|>",
    ],
)
def test_well_formed_wrong_answer_scores_exactly_format_score(response, format_score):
    reward = score_response(response, ["Paris"], RewardConfig(kind="em_format", format_score=format_score))
    assert reward.total == format_score  # exact, not approximate
    assert reward.format == format_score
    assert reward.exact_match == 0.0


def test_em_format_correct_and_well_formed_adds_format_score():
    reward = score_response(good("Paris"), ["Paris"], EM_FORMAT)
    assert reward == RewardBreakdown(total=1.0 + FMT, exact_match=1.0, format=FMT)
    malformed = score_response("<answer>Paris</answer>", ["Paris"], EM_FORMAT)
    assert malformed == RewardBreakdown(total=1.0, exact_match=1.0, format=0.0)


@pytest.mark.parametrize("cfg", [EM, EM_FORMAT], ids=["em", "em_format"])
@pytest.mark.parametrize(
    "response",
    ["", "I don't know.", "<think>hmm</think>", "<think>t</think><search>Beijing</search>", "<|im_end|>"],
)
def test_prompt_example_answer_is_never_scored(cfg, response):
    """The chat-templated Search-R1 prompt holds <answer> Beijing </answer>; under em / em_format
    it must never earn a response that did not answer Beijing itself (the reference does)."""
    reward = score_response(response, ["Beijing"], cfg, prompt_text=SR1_PROMPT)
    assert reward.exact_match == 0.0
    assert reward.total == 0.0
    original = score_response(response, ["Beijing"], ORIGINAL, prompt_text=SR1_PROMPT)
    assert original.exact_match == 1.0


def test_em_ignores_the_prompt_entirely():
    for case in SCORE_CASES:
        assert score_response(case.response, case.golds, EM, prompt_text=case.prompt) == score_response(
            case.response, case.golds, EM
        )


def test_score_group_matches_score_response_in_order():
    responses = [case.response for case in SCORE_CASES]
    golds = [case.golds for case in SCORE_CASES]
    prompts = [case.prompt for case in SCORE_CASES]
    for cfg in (EM, EM_FORMAT, ORIGINAL):
        expected = [score_response(r, g, cfg, p) for r, g, p in zip(responses, golds, prompts)]
        assert score_group(responses, golds, cfg, prompts) == expected
    assert score_group(responses, golds, EM) == [score_response(r, g, EM) for r, g in zip(responses, golds)]
    assert score_group([], [], EM) == []


def test_score_group_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one gold list"):
        score_group([good("a"), good("b")], [["a"]], EM)
    with pytest.raises(ValueError, match="prompts"):
        score_group([good("a")], [["a"]], EM, prompt_texts=["p", "q"])


# --------------------------------------------------------------------------- properties
_TAGGY = st.lists(
    st.sampled_from(
        [
            "<think>",
            "</think>",
            "<search>",
            "</search>",
            "<information>",
            "</information>",
            "<answer>",
            "</answer>",
            "<|im_end|>",
            " ",
            "\n",
            "Paris",
            "the",
            "a",
            ".",
            "x",
            "é",
        ]
    ),
    max_size=20,
).map("".join)


@given(st.text())
def test_normalize_is_idempotent(text):
    once = normalize_answer(text)
    assert normalize_answer(once) == once


@given(st.text(), st.lists(st.text(), max_size=3))
def test_exact_match_implies_substring_match(prediction, golds):
    if exact_match(prediction, golds):
        assert substring_exact_match(prediction, golds)


@given(_TAGGY, st.sampled_from([["Paris"], ["x", "the a"], []]))
def test_em_format_decomposes(response, golds):
    em = score_response(response, golds, EM)
    with_format = score_response(response, golds, EM_FORMAT)
    assert with_format.exact_match == em.total
    assert with_format.format == (FMT if is_valid_format(response) else 0.0)


@given(_TAGGY)
def test_valid_format_survives_trailing_special_tokens(response):
    assert is_valid_format(response + "<|im_end|>\n") == is_valid_format(response)


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("kind", ["em", "searchr1_qa_em_format"])
def test_config_refuses_a_format_score_that_would_be_ignored(kind):
    with pytest.raises(ConfigError, match="reward.format_score=0.2 has no effect"):
        RewardConfig(kind=kind, format_score=0.2)
    assert RewardConfig(kind="em_format", format_score=0.2).format_score == 0.2


# --------------------------------------------------------------------------- answer_tag_score (shaping)
SHAPED = RewardConfig(kind="em_format", format_score=FMT, answer_tag_score=0.05)


@pytest.mark.parametrize(
    ("response", "golds", "expected"),
    [
        # malformed (no think) but ends with an answer: partial credit, plus EM when right
        ("I guess <answer> London </answer>", ["Paris"], RewardBreakdown(total=0.05, exact_match=0.0, format=0.05)),
        ("<answer>Paris</answer><|im_end|>", ["Paris"], RewardBreakdown(total=1.05, exact_match=1.0, format=0.05)),
        # the full grammar still earns format_score, never both
        (good("London"), ["Paris"], RewardBreakdown(total=FMT, exact_match=0.0, format=FMT)),
        # no final answer block: nothing
        ("<answer> London </answer> and then more text", ["Paris"], RewardBreakdown(0.0, 0.0, 0.0)),
        ("<answer>   </answer>", ["Paris"], RewardBreakdown(0.0, 0.0, 0.0)),
        ("<answer> London", ["Paris"], RewardBreakdown(0.0, 0.0, 0.0)),
    ],
)
def test_answer_tag_score_credits_a_final_answer_block_only(response, golds, expected):
    assert score_response(response, golds, SHAPED) == expected


def test_answer_tag_score_never_pays_for_the_rollouts_invalid_action_text():
    from searchr1.config.schema import RolloutConfig

    correction = RolloutConfig().invalid_action_text  # names "<answer> and </answer>" mid-response
    reward = score_response("blah" + correction + "still no answer<|im_end|>", ["Paris"], SHAPED)
    assert reward == RewardBreakdown(total=0.0, exact_match=0.0, format=0.0)


def test_answer_tag_score_default_keeps_the_recipe():
    assert RewardConfig().answer_tag_score == 0.0
    assert score_response("I guess <answer> London </answer>", ["Paris"], EM_FORMAT).format == 0.0


@pytest.mark.parametrize("kind", ["em", "searchr1_qa_em_format"])
def test_answer_tag_score_outside_em_format_is_refused(kind):
    with pytest.raises(ConfigError, match="answer_tag_score"):
        RewardConfig(kind=kind, answer_tag_score=0.1)


def test_only_the_original_scoring_reads_the_prompt():
    from searchr1.reward import reads_prompt

    assert reads_prompt(RewardConfig(kind="searchr1_qa_em_format"))
    assert not reads_prompt(RewardConfig(kind="em"))
    assert not reads_prompt(RewardConfig(kind="em_format", format_score=0.2))
