"""What the policy asked for in one turn: a search, an answer, or nothing valid."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

ActionKind = Literal["search", "answer", "invalid"]

STOP_TAGS: tuple[str, ...] = ("</search>", "</answer>")
"""Closing tags that end a turn; the engine receives them as stop strings."""

# Search-R1 takes the first well-formed tag pair of either kind (generation.py, postprocess_predictions).
_ACTION_RE = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    content: str = ""
    """The stripped text between the tags (the query or the answer)."""


INVALID = Action("invalid")


def parse_action(turn_text: str) -> Action:
    """The first ``<search>…</search>`` or ``<answer>…</answer>`` in the turn, else invalid."""
    match = _ACTION_RE.search(turn_text)
    if match is None:
        return INVALID
    return Action(match.group(1), match.group(2).strip())  # type: ignore[arg-type]


def first_stop_tag_end(text: str) -> Optional[int]:
    """Index just past the earliest closing tag in ``text``, or None when there is none."""
    ends = [pos + len(tag) for tag in STOP_TAGS if (pos := text.find(tag)) != -1]
    return min(ends) if ends else None
