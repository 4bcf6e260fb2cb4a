"""What the policy asked for in one turn: a tool call, an answer, or nothing valid."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

ANSWER = "answer"
INVALID = "invalid"


@dataclass(frozen=True)
class Action:
    kind: str
    """A tool's tag (``search``, ``calculator``, …), ``answer`` or ``invalid``."""
    content: str = ""
    """The stripped text between the tags (the tool's argument or the answer)."""


@dataclass(frozen=True)
class ActionGrammar:
    """The tags a run's policy may write: one per configured tool, plus ``<answer>``."""

    tool_tags: tuple[str, ...] = ("search",)
    stop_tags: tuple[str, ...] = field(init=False)
    """Closing tags that end a turn; the engine receives them as stop strings."""
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tags = (*self.tool_tags, ANSWER)
        object.__setattr__(self, "stop_tags", tuple(f"</{tag}>" for tag in tags))
        # Search-R1 takes the first well-formed tag pair of either kind (generation.py, postprocess_predictions).
        alternatives = "|".join(re.escape(tag) for tag in tags)
        object.__setattr__(self, "_pattern", re.compile(rf"<({alternatives})>(.*?)</\1>", re.DOTALL))

    def parse(self, turn_text: str) -> Action:
        """The first ``<tag>…</tag>`` of a known tag in the turn, else invalid."""
        match = self._pattern.search(turn_text)
        if match is None:
            return Action(INVALID)
        return Action(match.group(1), match.group(2).strip())

    def first_stop_tag_end(self, text: str) -> Optional[int]:
        """Index just past the earliest closing tag in ``text``, or None when there is none."""
        ends = [pos + len(tag) for tag in self.stop_tags if (pos := text.find(tag)) != -1]
        return min(ends) if ends else None


SEARCH_GRAMMAR = ActionGrammar()
"""Search-R1's grammar: ``<search>`` and ``<answer>`` (stop tags ``</search>``, ``</answer>``)."""
