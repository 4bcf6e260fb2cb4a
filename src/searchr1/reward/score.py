"""Config-driven scoring of finished responses: the one reward both trainers and eval use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from searchr1.config.schema import RewardConfig
from searchr1.reward.answers import GoldAnswers, exact_match, extract_answer, token_f1
from searchr1.reward.reference import em_format_score, em_score
from searchr1.reward.structure import ends_with_answer, is_valid_format


@dataclass(frozen=True)
class RewardBreakdown:
    """A sample's reward; always ``total == (f1 if f1 is not None else exact_match) + format + (tool or 0)``."""

    total: float
    exact_match: float
    """1.0 / 0.0 for the answer the reward saw (see score_response for which answer that is)."""
    format: float
    """The format component, logged as ``reward/format``; negative only for the original's
    ``score - structure_format_score`` case."""
    tool: Optional[float] = None
    """The tool-use term (``tool_bonus`` or ``-no_tool_penalty``); None when the config has none."""
    f1: Optional[float] = None
    """Token F1 of the answer under kind ``f1`` (then the answer part of ``total``); None otherwise."""


def reads_prompt(cfg: RewardConfig) -> bool:
    """Only the original Search-R1 scoring reads the prompt (its quirks need it); callers can skip
    decoding prompts for every other kind."""
    return cfg.kind == "searchr1_qa_em_format"


def score_response(
    response_text: str,
    golden_answers: GoldAnswers,
    cfg: RewardConfig,
    prompt_text: str = "",
    tool_calls: Optional[int] = None,
) -> RewardBreakdown:
    """Score one response under ``cfg.kind``; ``tool_calls`` is the response's count of well-formed tool
    calls (``len(Trajectory.tool_calls)``), needed only when the config has a tool term.

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
    - ``f1``: token F1 (the eval's :func:`token_f1`) of the response's last ``<answer>`` block against
      the best gold answer; 0 without an answer. ``exact_match`` is still the answer's EM.

    With ``em``, ``em_format`` and ``f1``, ``tool_bonus`` is added when ``tool_calls >= 1`` and
    ``no_tool_penalty`` subtracted when ``tool_calls == 0`` (RewardConfig bounds both).

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
    f1 = (0.0 if answer is None else token_f1(answer, golden_answers)) if cfg.kind == "f1" else None
    tool = _tool_term(cfg, tool_calls)
    total = (em if f1 is None else f1) + fmt + (tool or 0.0)  # x + 0.0 == x: em and em_format are unchanged
    return RewardBreakdown(total=total, exact_match=em, format=fmt, tool=tool, f1=f1)


def _tool_term(cfg: RewardConfig, tool_calls: Optional[int]) -> Optional[float]:
    if not (cfg.tool_bonus or cfg.no_tool_penalty):
        return None
    if tool_calls is None:
        raise ValueError("reward.tool_bonus / reward.no_tool_penalty need the response's tool_calls count")
    return cfg.tool_bonus if tool_calls > 0 else 0.0 - cfg.no_tool_penalty  # not -0.0 when there is no penalty


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
    tool_calls: Optional[Sequence[int]] = None,
) -> list[RewardBreakdown]:
    """:func:`score_response` over a batch (e.g. one GRPO group), in order; one gold list (and prompt, and
    tool-call count, when given) per response."""
    prompts = [""] * len(response_texts) if prompt_texts is None else prompt_texts
    calls: Sequence[Optional[int]] = [None] * len(response_texts) if tool_calls is None else tool_calls
    if not len(response_texts) == len(golden_answers) == len(prompts) == len(calls):
        raise ValueError(
            f"score_group needs one gold list, prompt and tool-call count per response; got {len(response_texts)} "
            f"responses, {len(golden_answers)} gold lists, {len(prompts)} prompts, {len(calls)} tool-call counts"
        )
    return [
        score_response(response, golds, cfg, prompt, count)
        for response, golds, prompt, count in zip(response_texts, golden_answers, prompts, calls)
    ]
