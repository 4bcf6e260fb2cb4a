"""Answer normalization, exact match and ``<answer>`` extraction (SQuAD-style, as Search-R1 uses)."""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable, Optional, Union

GoldAnswers = Union[str, Iterable[str]]
"""One gold string or several; a bare string counts as a single answer."""

_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, then the articles a/an/the, then collapse whitespace.

    The order matters and follows Search-R1: punctuation goes before articles, so "the-end"
    becomes "theend" (no article left), while "the end" becomes "end".
    """
    text = text.lower().translate(_DROP_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def as_answer_list(golden_answers: GoldAnswers) -> Iterable[str]:
    """A bare string is one answer (not an iterable of characters)."""
    return [golden_answers] if isinstance(golden_answers, str) else golden_answers


def exact_match(prediction: str, golden_answers: GoldAnswers) -> float:
    """1.0 when the normalized prediction equals any normalized gold answer, else 0.0."""
    predicted = normalize_answer(prediction)
    return float(any(normalize_answer(gold) == predicted for gold in as_answer_list(golden_answers)))


def substring_exact_match(prediction: str, golden_answers: GoldAnswers) -> float:
    """1.0 when any normalized gold answer occurs inside the normalized prediction, else 0.0."""
    predicted = normalize_answer(prediction)
    return float(any(normalize_answer(gold) in predicted for gold in as_answer_list(golden_answers)))


def token_f1(prediction: str, golden_answers: GoldAnswers) -> float:
    """Best token-level F1 over the gold answers, on normalized text (SQuAD-style)."""
    predicted = normalize_answer(prediction).split()
    best = 0.0
    for gold in as_answer_list(golden_answers):
        reference = normalize_answer(gold).split()
        common = sum((Counter(predicted) & Counter(reference)).values())
        if common:
            precision, recall = common / len(predicted), common / len(reference)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def extract_answer(text: str, *, min_matches: int = 1) -> Optional[str]:
    """The stripped content of the last ``<answer>…</answer>`` block, or None.

    Blocks are matched left to right, lazily and without overlap, so ``<answer>a<answer>b</answer>``
    is one block whose content is ``a<answer>b``. Fewer than ``min_matches`` blocks give None;
    Search-R1's reference extraction uses ``min_matches=2`` because it scores prompt + response.
    """
    if min_matches < 1:
        raise ValueError(f"min_matches must be >= 1, got {min_matches}")
    blocks = _ANSWER_BLOCK.findall(text)
    if len(blocks) < min_matches:
        return None
    return blocks[-1].strip()
