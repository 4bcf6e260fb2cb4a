"""The think/search/information/answer structure check and the retrieval-hit check."""

from __future__ import annotations

import re
from typing import Iterable

from searchr1.reward.answers import GoldAnswers, as_answer_list, normalize_answer

_TAG = re.compile(r"(</?(?:think|search|information|answer)>)")
_ASSISTANT_MARKER = re.compile(r"<\|im_start\|>assistant\s*")
_INFORMATION_BLOCK = re.compile(r"<information>(.*?)</information>", re.DOTALL)
_FINAL_ANSWER = re.compile(r"<answer>((?:(?!<answer>).)*)</answer>\Z", re.DOTALL)
_SPECIAL_TOKEN = re.compile(r"<\|[\w.\-]+\|>|</s>")

# (state, tag) -> next state. The grammar is
#   <think>…</think> ( <search>…</search> <information>…</information> <think>…</think> )* <answer>…</answer>
# with only whitespace between blocks and nothing after </answer>.
_TRANSITIONS = {
    ("start", "<think>"): "in_think",
    ("information", "<think>"): "in_think",
    ("in_think", "</think>"): "after_think",
    ("after_think", "<search>"): "in_search",
    ("in_search", "</search>"): "after_search",
    ("after_search", "<information>"): "in_information",
    ("in_information", "</information>"): "information",
    ("after_think", "<answer>"): "in_answer",
    ("in_answer", "</answer>"): "end",
}
_INSIDE_BLOCK = frozenset({"in_think", "in_search", "in_information", "in_answer"})


def follows_grammar(content: str) -> bool:
    """True when ``content`` is a complete, well-nested sequence of the grammar above.

    Search-R1 also counts opening vs closing tags first; that check can never change the
    outcome (every sequence this machine accepts is balanced), so it is left out.
    """
    state = "start"
    # re.split with a capturing group alternates text (even index) and tag (odd index).
    for index, part in enumerate(_TAG.split(content)):
        if index % 2:
            state = _TRANSITIONS.get((state, part), "")
            if not state:
                return False
        elif state not in _INSIDE_BLOCK and part.strip():
            return False
    return state == "end"


def is_valid_sequence(text: str) -> bool:
    """Search-R1's check over prompt + response: the grammar must hold after ``<|im_start|>assistant``.

    Text without that chat-template marker (e.g. a prompt built without a chat template) is never valid.
    """
    marker = _ASSISTANT_MARKER.search(text)
    return marker is not None and follows_grammar(text[marker.end() :])


def strip_special_tail(text: str) -> str:
    """Drop trailing whitespace and special tokens such as ``<|im_end|>``, ``<|endoftext|>``, ``</s>``."""
    text = text.rstrip()
    while text.endswith(("|>", "</s>")):
        start = text.rfind("<|") if text.endswith("|>") else len(text) - len("</s>")
        if start < 0 or not _SPECIAL_TOKEN.fullmatch(text, start):
            break
        text = text[:start].rstrip()
    return text


def is_valid_format(response_text: str) -> bool:
    """Our check over the response alone: the grammar over the response, after dropping trailing
    EOS/special tokens (which a decode with special tokens kept leaves after ``</answer>``)."""
    return follows_grammar(strip_special_tail(response_text))


def ends_with_answer(response_text: str) -> bool:
    """True when the response, trailing special tokens dropped, ends with a non-empty
    ``<answer>…</answer>`` block (whatever precedes it)."""
    match = _FINAL_ANSWER.search(strip_special_tail(response_text))
    return match is not None and bool(match.group(1).strip())


def gold_in_information(text: str, golds: Iterable[str]) -> bool:
    """True when some normalized gold occurs inside some normalized ``<information>`` block.

    ``golds`` is iterated as given (Search-R1's reference passes a bare string through, which
    iterates its characters); use :func:`retrieval_hit` for the sane form.
    """
    blocks = [normalize_answer(block) for block in _INFORMATION_BLOCK.findall(text)]
    if not blocks:
        return False
    return any(normalize_answer(gold) in block for gold in golds for block in blocks)


def retrieval_hit(text: str, golden_answers: GoldAnswers) -> bool:
    """Whether a gold answer was retrieved: it appears (normalized) in an ``<information>`` block."""
    return gold_in_information(text, as_answer_list(golden_answers))
