"""Token bookkeeping the loop needs: prompt ids, boundary-safe inserted text, cutting at a stop tag.

Token-in/token-out: the loop never re-tokenizes accumulated text. Text we insert (observations,
corrections) is encoded once, in context, so that its tokens are the ones a tokenizer would give
the same characters inside the full response: nothing merges across the boundary with the model's
tokens on either side.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from searchr1.tools.grammar import SEARCH_GRAMMAR, Grammar
from searchr1.tools.toolbox import Toolbox
from searchr1.engines.base import Tokenizer

RIGHT_CONTEXT = "<"
"""What we assume follows an inserted segment: the model's next tag (``<think>``, ``<search>``…)."""

_CONTEXT_CACHE_SIZE = 4096


def prompt_ids(
    tokenizer: Any, messages: Sequence[Mapping[str, str]], tools: Optional[list[dict[str, Any]]] = None
) -> list[int]:
    """Prompt token ids through the tokenizer's chat template, ending with the assistant header; ``tools``
    (JSON schemas) go to the template's own tools section (rollout.action_format=tool_calls)."""
    extra = {"tools": tools} if tools else {}
    ids = tokenizer.apply_chat_template(
        list(messages), add_generation_prompt=True, tokenize=True, return_dict=False, **extra
    )
    # Some transformers versions still hand back an encoding object despite return_dict=False.
    if isinstance(ids, Mapping):
        ids = ids["input_ids"]
    return [int(i) for i in ids]


def policy_prompt_ids(tokenizer: Any, tools: Toolbox, stored: list[dict[str, str]], question: str) -> list[int]:
    """A prompt's ids as the policy with ``tools`` sees it: the stored messages (tags, search only), generated
    instructions (tags, other tools), or function calling through the template's tools section (tool_calls)."""
    return prompt_ids(tokenizer, tools.prompt_messages(stored, question), tools.template_tools)


class SegmentEncoder:
    """Encodes inserted text so its tokens match what the tokenizer gives it in context.

    ``encode(text, left_ids)`` tokenizes ``left + text + RIGHT_CONTEXT`` where ``left`` is the decoded
    last token before the insertion, then strips the context tokens. When the context does not come
    back as the same tokens (it merged with the text), it falls back to encoding the text alone:
    the returned ids always decode to exactly ``text``.
    """

    def __init__(self, tokenizer: Tokenizer, right_context: str = RIGHT_CONTEXT) -> None:
        self._tokenizer = tokenizer
        self._right = right_context
        self._context_ids: dict[str, list[int]] = {}

    def encode(self, text: str, left_ids: Sequence[int] = ()) -> list[int]:
        if not text:
            return []
        left = self._tokenizer.decode(list(left_ids[-1:]), skip_special_tokens=False)
        ids = self._plain(left + text + self._right)
        head, tail = self._context(left), self._context(self._right)
        cut_end = len(ids) - len(tail)
        if ids[: len(head)] == head and ids[cut_end:] == tail and cut_end >= len(head):
            middle = ids[len(head) : cut_end]
            if self._tokenizer.decode(middle, skip_special_tokens=False) == text:
                return middle
        return self._plain(text)

    def _plain(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def _context(self, text: str) -> list[int]:
        cached = self._context_ids.get(text)
        if cached is None:
            if len(self._context_ids) >= _CONTEXT_CACHE_SIZE:
                self._context_ids.clear()
            cached = self._context_ids[text] = self._plain(text)
        return cached


def keep_through_stop_tag(
    tokenizer: Tokenizer, ids: Sequence[int], grammar: Grammar = SEARCH_GRAMMAR
) -> tuple[int, str]:
    """How many of a turn's tokens to keep so nothing after the first closing tag survives.

    Returns (count, decoded text of the kept tokens). The token that completes the tag is kept
    whole, even when it carries a few characters past the tag (splitting it would mean
    re-tokenizing). Engines that honour stop strings return nothing more, so one decode suffices.
    """
    text = tokenizer.decode(list(ids), skip_special_tokens=False)
    end = grammar.first_stop_tag_end(text)
    if end is None or end == len(text):
        return len(ids), text
    low, high = 1, len(ids)  # smallest prefix whose text contains a closing tag
    while low < high:
        mid = (low + high) // 2
        if grammar.first_stop_tag_end(tokenizer.decode(list(ids[:mid]), skip_special_tokens=False)) is None:
            low = mid + 1
        else:
            high = mid
    return low, tokenizer.decode(list(ids[:low]), skip_special_tokens=False)
