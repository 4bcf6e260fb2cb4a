"""Config-driven scoring of finished responses: the one reward both trainers and eval use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from searchr1.config.schema import RewardConfig
from searchr1.reward.answers import GoldAnswers, exact_match, extract_answer
from searchr1.reward.reference import em_format_score, em_score
from searchr1.reward.structure import ends_with_answer, is_valid_format


@dataclass(frozen=True)
class RewardBreakdown:
    """A sample's reward; always ``total == exact_match + format``."""

    total: float
    exact_match: float
    """1.0 / 0.0 for the answer the reward saw (see score_response for which answer that is)."""
    format: float
    """The format component, logged as ``reward/format``; negative only for the original's
    ``score - structure_format_score`` case."""


def reads_prompt(cfg: RewardConfig) -> bool:
    """Only the original Search-R1 scoring reads the prompt (its quirks need it); callers can skip
    decoding prompts for every other kind."""
    return cfg.kind == "searchr1_qa_em_format"


def score_response(
    response_text: str, golden_answers: GoldAnswers, cfg: RewardConfig, prompt_text: str = ""
) -> RewardBreakdown:
    """Score one response under ``cfg.kind``.

    - ``em``: exact match of the response's last ``<answer>`` block (one block is enough). The
      prompt is never read, so an example answer in a chat-templated prompt can never be scored.
      (Search-R1's invalid-action correction, which the rollout inserts, holds ``<answer> and
      </answer>``: a response that never answers after one is scored as answering "and".)
    - ``em_format``: the recipe's ``EM + format_score x valid_format(response)``, not capped: a
      correct well-formed answer gets ``1 + format_score``, a well-formed wrong one exactly
      ``format_score``, a correct malformed one 1. We keep the sum rather than cap it at 1 so that
      the format still separates correct answers; GRPO's group normalization makes the scale moot.
      Valid format is Search-R1's think/search/information/answer grammar over the response alone
      (no ``<|im_start|>assistant`` marker needed; trailing ``<|im_end|>``-style tokens ignored).
    - ``searchr1_qa_em_format``: Search-R1's ``qa_em_format.compute_score_em`` over
      ``prompt_text + response_text``, quirks included; ``exact_match`` is its EM over the same
      text (two ``<answer>`` blocks needed) and ``format`` is the rest of its score.

    With ``em_format``, ``answer_tag_score`` (default 0) is the format credit of a response whose
    grammar is invalid but which ends with a non-empty ``<answer>…</answer>`` block: the model's
    last action was a well-formed answer. The rollout's invalid-action correction (which names
    ``<answer> and </answer>`` mid-response) is always followed by more text, so it never earns it.
    """
    if cfg.kind == "searchr1_qa_em_format":
        return _score_original(prompt_text + response_text, golden_answers, cfg)
    answer = extract_answer(response_text)
    em = 0.0 if answer is None else exact_match(answer, golden_answers)
    fmt = _format_credit(response_text, cfg) if cfg.kind == "em_format" else 0.0
    return RewardBreakdown(total=em + fmt, exact_match=em, format=fmt)


def _format_credit(response_text: str, cfg: RewardConfig) -> float:
    if is_valid_format(response_text):
        return cfg.format_score
    return cfg.answer_tag_score if ends_with_answer(response_text) else 0.0


def _score_original(text: str, golden_answers: GoldAnswers, cfg: RewardConfig) -> RewardBreakdown:
    total = em_format_score(
        text,
        {"target": golden_answers},
        structure_format_score=cfg.structure_format_score,
        final_format_score=cfg.final_format_score,
        retrieval_score=cfg.retrieval_score,
        format_score=cfg.format_score,
    )
    em = em_score(text, {"target": golden_answers})
    return RewardBreakdown(total=total, exact_match=em, format=total - em)


def score_group(
    response_texts: Sequence[str],
    golden_answers: Sequence[GoldAnswers],
    cfg: RewardConfig,
    prompt_texts: Optional[Sequence[str]] = None,
) -> list[RewardBreakdown]:
    """:func:`score_response` over a batch (e.g. one GRPO group), in order; one gold list per response."""
    prompts = [""] * len(response_texts) if prompt_texts is None else prompt_texts
    if not len(response_texts) == len(golden_answers) == len(prompts):
        raise ValueError(
            f"score_group needs one gold list and prompt per response; got {len(response_texts)} responses, "
            f"{len(golden_answers)} gold lists, {len(prompts)} prompts"
        )
    return [
        score_response(response, golds, cfg, prompt)
        for response, golds, prompt in zip(response_texts, golden_answers, prompts)
    ]
