"""The instructions a policy sees: Search-R1's own template for ``tools=[search]``, else one generated from the
configured tools in the same words and shape."""

from __future__ import annotations

from typing import Sequence

from searchr1.data.prompt import normalize_question
from searchr1.tools.base import ToolSpec

_OPENING = (
    "Answer the given question. "
    "You must conduct reasoning inside <think> and </think> first every time you get new information. "
    "After reasoning, if you need a tool, call it by putting its input between its tags; its result comes back "
    "between the result tags named below. The tools:\n"
)
_CLOSING = (
    "You can call the tools as many times as you want. "
    "If you find no further external knowledge or computation needed, you can directly provide the answer "
    "inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. "
    "Question: {question}\n"
)


_TOOL_CALLS_INSTRUCTIONS = (
    "Answer the given question. "
    "You must conduct reasoning inside <think> and </think> first every time you get new information. "
    "After reasoning, if you need a tool, call one of the functions you were given; its result comes back as a "
    "tool response. You can call the tools as many times as you want. "
    "If you find no further external knowledge or computation needed, you can directly provide the answer "
    "inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. "
    "Question: {question}\n"
)


def tool_calls_prompt(question: str) -> str:
    """The user-message text under ``rollout.action_format=tool_calls``: the chat template lists the tools
    itself (its tools section), so the instructions only say how to think, call and answer."""
    return _TOOL_CALLS_INSTRUCTIONS.format(question=normalize_question(question))


def is_search_only(specs: Sequence[ToolSpec]) -> bool:
    return [spec.name for spec in specs] == ["search"]


def tool_instructions(spec: ToolSpec) -> str:
    """One tool's line of the generated prompt."""
    tag, result = spec.tag, spec.observation_tag
    return (
        f"- <{tag}> {spec.argument} </{tag}>: {spec.description} The result comes back between <{result}> and "
        f"</{result}>. For example, <{tag}> {spec.example} </{tag}>.\n"
    )


def tools_prompt(question: str, specs: Sequence[ToolSpec]) -> str:
    """The user-message text for ``question`` when the policy has ``specs`` (not just search)."""
    lines = "".join(tool_instructions(spec) for spec in specs)
    return _OPENING + lines + _CLOSING.format(question=normalize_question(question))


def policy_messages(stored: list[dict[str, str]], question: str, specs: Sequence[ToolSpec]) -> list[dict[str, str]]:
    """The chat messages a policy with ``specs`` sees: the stored ones (Search-R1's template, byte for byte)
    when the only tool is search, else one user turn with the generated instructions."""
    if is_search_only(specs):
        return stored
    return [{"role": "user", "content": tools_prompt(question, specs)}]
