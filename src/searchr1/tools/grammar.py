"""What the policy asked for in one turn: a tool call, an answer, or nothing valid."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Protocol

ANSWER = "answer"
INVALID = "invalid"
MALFORMED = "malformed"
"""A tool call that was attempted but cannot be run (rollout.action_format=tool_calls): bad JSON, an unknown
tool, wrong arguments, two calls in one turn. It gets an error observation and counts as an invalid action."""


@dataclass(frozen=True)
class Action:
    kind: str
    """A tool's tag (``search``, ``calculator``, …), ``answer``, ``invalid`` or ``malformed``."""
    content: str = ""
    """The stripped text between the tags (the tool's argument or the answer)."""
    error: Optional[str] = None
    """Why a malformed call cannot run (what the error observation tells the policy)."""


class Grammar(Protocol):
    """How the policy writes its actions in one ``rollout.action_format``."""

    @property
    def stop_tags(self) -> tuple[str, ...]:
        """Closing tags that end a turn (engine stop strings)."""
        ...

    def parse(self, turn_text: str) -> Action: ...

    def first_stop_tag_end(self, text: str) -> Optional[int]: ...


def _first_stop_tag_end(stop_tags: tuple[str, ...], text: str) -> Optional[int]:
    ends = [pos + len(tag) for tag in stop_tags if (pos := text.find(tag)) != -1]
    return min(ends) if ends else None


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
        return _first_stop_tag_end(self.stop_tags, text)


SEARCH_GRAMMAR = ActionGrammar()
"""Search-R1's grammar: ``<search>`` and ``<answer>`` (stop tags ``</search>``, ``</answer>``)."""


@dataclass(frozen=True)
class ToolCallGrammar:
    """``rollout.action_format=tool_calls``: ``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` as the chat
    templates of Qwen2.5-Instruct and Qwen3 teach it, or the final ``<answer>…</answer>``."""

    arguments: Mapping[str, str]
    """Each tool's name -> the name of its one argument."""
    stop_tags: tuple[str, ...] = ("</tool_call>", "</answer>")

    def parse(self, turn_text: str) -> Action:
        match = _CALL_OR_ANSWER.search(turn_text)
        if match is None:
            return Action(INVALID)
        if match.group(1) == ANSWER:
            return Action(ANSWER, match.group(2).strip())
        body = match.group(2)
        if "<tool_call>" in body or turn_text.count("<tool_call>") > 1:
            return _malformed("two tool calls in one turn; make one call, then read its result")
        try:
            call = json.loads(body)
        except json.JSONDecodeError as exc:
            return _malformed(f"the tool call is not valid JSON ({exc.msg} at character {exc.pos})")
        return self._checked(call)

    def first_stop_tag_end(self, text: str) -> Optional[int]:
        return _first_stop_tag_end(self.stop_tags, text)

    def _checked(self, call: Any) -> Action:
        if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
            return _malformed('a tool call is {"name": <tool name>, "arguments": {<argument>: <value>}}')
        name, arguments = call["name"], call["arguments"]
        if name not in self.arguments:
            return _malformed(f"unknown tool {name!r}; the tools are {', '.join(self.arguments)}")
        expected = self.arguments[name]
        if not isinstance(arguments, dict) or set(arguments) != {expected}:
            got = ", ".join(arguments) if isinstance(arguments, dict) else type(arguments).__name__
            return _malformed(f"{name} takes exactly one argument, {expected!r} (got: {got or 'none'})")
        value = arguments[expected]
        return Action(name, (value if isinstance(value, str) else json.dumps(value)).strip())


_CALL_OR_ANSWER = re.compile(r"<(tool_call|answer)>(.*?)</\1>", re.DOTALL)


def _malformed(error: str) -> Action:
    return Action(MALFORMED, error=error)
