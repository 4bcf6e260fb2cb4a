"""Rewards: Search-R1's reference scoring (parity) and our config-driven scoring.

Reference functions agree exactly with Search-R1's ``qa_em.py`` / ``qa_em_format.py``;
``score_response`` / ``score_group`` are what the trainers call, driven by ``RewardConfig``.
"""

from searchr1.reward.answers import (
    GoldAnswers,
    exact_match,
    extract_answer,
    normalize_answer,
    substring_exact_match,
    token_f1,
)
from searchr1.reward.reference import em_format_score, em_score, subem_score
from searchr1.reward.score import RewardBreakdown, reads_prompt, score_group, score_response
from searchr1.reward.structure import (
    follows_grammar,
    is_valid_format,
    is_valid_sequence,
    retrieval_hit,
    strip_special_tail,
)

__all__ = [
    "GoldAnswers",
    "RewardBreakdown",
    "em_format_score",
    "em_score",
    "exact_match",
    "extract_answer",
    "follows_grammar",
    "is_valid_format",
    "is_valid_sequence",
    "normalize_answer",
    "retrieval_hit",
    "score_group",
    "reads_prompt",
    "score_response",
    "strip_special_tail",
    "subem_score",
    "substring_exact_match",
    "token_f1",
]
