"""Search-R1's scoring functions, reimplemented to agree with the originals on every input.

Sources (PeterGriffinJin/Search-R1 @ a14dc3a): ``verl/utils/reward_score/qa_em.py``
(``compute_score_em``, ``compute_score_subem``) and ``qa_em_format.py`` (``compute_score_em``).
They score the decoded prompt + response, so:

- the answer is the last ``<answer>`` block, and only when there are at least two. The Search-R1
  prompt itself holds two (``<answer> and </answer>`` and ``<answer> Beijing </answer>``), so a
  response without an answer is scored as if it answered "Beijing";
- the format check needs the ``<|im_start|>assistant`` marker of the chat template, and any
  ``<|im_end|>`` left after ``</answer>`` makes the format invalid;
- the retrieval check also sees the prompt's ``<information> and </information>``.

``ground_truth`` is ``{"target": answers}`` as in Search-R1's parquet files; a bare list or string
is accepted as the target itself. A string target is one answer for exact match but, as in the
original, the retrieval check iterates its characters. Differences that do not change any score:
the originals print one sample in 64 to stdout (and draw from the global ``random`` state), return
int 0 where we return 0.0, and ignore ``method``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from searchr1.reward.answers import exact_match, extract_answer, substring_exact_match
from searchr1.reward.structure import gold_in_information, is_valid_sequence

_REFERENCE_MIN_ANSWERS = 2


def _target(ground_truth: Any) -> Any:
    return ground_truth["target"] if isinstance(ground_truth, Mapping) else ground_truth


def _answer_score(
    solution_str: str, ground_truth: Any, matches: Callable[..., float], format_score: float, score: float
) -> float:
    answer = extract_answer(solution_str, min_matches=_REFERENCE_MIN_ANSWERS)
    if answer is None:
        return 0.0
    return score if matches(answer, _target(ground_truth)) else format_score


def em_score(
    solution_str: str, ground_truth: Any, method: str = "strict", format_score: float = 0.0, score: float = 1.0
) -> float:
    """``qa_em.compute_score_em``: 0 without an answer, ``score`` on exact match, else ``format_score``."""
    return _answer_score(solution_str, ground_truth, exact_match, format_score, score)


def subem_score(
    solution_str: str, ground_truth: Any, method: str = "strict", format_score: float = 0.0, score: float = 1.0
) -> float:
    """``qa_em.compute_score_subem``: as :func:`em_score` with a substring match."""
    return _answer_score(solution_str, ground_truth, substring_exact_match, format_score, score)


def em_format_score(
    solution_str: str,
    ground_truth: Any,
    method: str = "strict",
    structure_format_score: float = 0.0,
    final_format_score: float = 0.0,
    retrieval_score: float = 0.0,
    format_score: float = 0.0,
    score: float = 1.0,
) -> float:
    """``qa_em_format.compute_score_em``, with sf = structure_format_score:

    - exact match: ``score`` if the format is valid, else ``score - sf``;
    - otherwise, valid format: ``sf``, plus ``retrieval_score`` when a gold answer was retrieved;
    - otherwise, a (wrong) answer: ``final_format_score``; no answer: 0.

    ``format_score`` is accepted and ignored, exactly as in the original.
    """
    target = _target(ground_truth)
    valid = is_valid_sequence(solution_str)
    answer = extract_answer(solution_str, min_matches=_REFERENCE_MIN_ANSWERS)
    if answer is not None and exact_match(answer, target):
        return score if valid else score - structure_format_score
    if valid:
        retrieved = gold_in_information(solution_str, target)
        return structure_format_score + retrieval_score if retrieved else structure_format_score
    return final_format_score if answer is not None else 0.0
