"""How a run's actions and observations are written: ``rollout.action_format``.

- ``tags`` (Search-R1's): ``<search> q </search>`` and the tool's own observation tags, in one assistant turn.
- ``tool_calls`` (the function calling Qwen2.5-Instruct and Qwen3 were trained on): the tools are listed in the
  system turn by the model's chat template itself, the policy writes ``<tool_call>{"name": …, "arguments": …}
  </tool_call>``, and each result is a ``tool`` message exactly as that template renders one. The rendered text
  is found once per run by rendering a probe conversation, then appended (masked) after every call: token in,
  token out, never a re-render of the conversation.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from searchr1.config.checks import ConfigError
from searchr1.tools.base import ToolOutput, ToolSpec
from searchr1.tools.grammar import ActionGrammar, Grammar, ToolCallGrammar
from searchr1.tools.prompt import is_search_only, policy_messages, tool_calls_prompt

_ASSISTANT_MARK = "\u2063assistant-probe\u2063"
_TOOL_MARK = "\u2063tool-probe\u2063"


class TagFormat:
    """``rollout.action_format=tags``."""

    def __init__(self, specs: Sequence[ToolSpec]) -> None:
        self.specs = list(specs)
        self.grammar: Grammar = ActionGrammar(tuple(spec.tag for spec in specs))
        self.template_tools: Optional[list[dict[str, Any]]] = None

    def observation(self, spec: ToolSpec, output: ToolOutput) -> str:
        return spec.render(output)

    def error_observation(self, message: str) -> str:
        raise AssertionError("the tags format has no malformed calls")  # ActionGrammar never returns one

    def call_text(self, spec: ToolSpec, argument: str) -> str:
        """How the policy writes a call of ``spec`` with ``argument`` after its thought (what a demonstration writes)."""
        return f"\n<{spec.tag}> {argument} </{spec.tag}>"

    def invalid_action_text(self, default: str) -> str:
        """The default correction names search's tags; a run with other tools gets one naming every tool's."""
        if is_search_only(self.specs):
            return default
        tags = ", ".join(f"<{spec.tag}> and </{spec.tag}>" for spec in self.specs)
        return (
            "\nMy previous action is invalid. If I want to use a tool, I should put its input between its tags: "
            f"{tags}. If I want to give the final answer, I should put the answer between <answer> and "
            "</answer>. Let me try again.\n"
        )

    def prompt_messages(self, stored: list[dict[str, str]], question: str) -> list[dict[str, str]]:
        return policy_messages(stored, question, self.specs)


class ToolCallFormat:
    """``rollout.action_format=tool_calls`` through ``tokenizer``'s chat template."""

    def __init__(self, specs: Sequence[ToolSpec], tokenizer: Any) -> None:
        self.specs = list(specs)
        self.grammar = ToolCallGrammar({spec.name: spec.argument for spec in specs})
        self.template_tools = [spec.json_schema() for spec in specs]
        self._tokenizer = tokenizer
        self._before, self._after = tool_message_frame(tokenizer)
        _check_tools_section(tokenizer, self.template_tools)

    def observation(self, spec: ToolSpec, output: ToolOutput) -> str:
        return self._before + output.text + self._after

    def error_observation(self, message: str) -> str:
        return self._before + f"Error: {message}" + self._after

    def invalid_action_text(self, default: str) -> str:
        """The default correction speaks of tags; a function-calling policy is told how to call instead."""
        return (
            "\nMy previous action is invalid. If I want to use a tool, I should write one call between <tool_call> "
            'and </tool_call>: {"name": <function name>, "arguments": {...}}. If I want to give the final answer, '
            "I should put the answer between <answer> and </answer>. Let me try again.\n"
        )

    def call_text(self, spec: ToolSpec, argument: str) -> str:
        """A call as the chat template renders an assistant message's tool call (from the end of its content to
        ``</tool_call>``): demonstrations write exactly what a re-rendered conversation would hold."""
        call = {"type": "function", "function": {"name": spec.name, "arguments": {spec.argument: argument}}}
        messages = [
            {"role": "user", "content": "probe"},
            {"role": "assistant", "content": _ASSISTANT_MARK, "tool_calls": [call]},
        ]
        text = self._tokenizer.apply_chat_template(messages, tokenize=False)
        after_content = text.split(_ASSISTANT_MARK, 1)[1]
        end = after_content.rfind("</tool_call>")
        if end < 0:
            raise ConfigError("rollout.action_format=tool_calls: the chat template renders no <tool_call> block")
        return after_content[: end + len("</tool_call>")]

    def prompt_messages(self, stored: list[dict[str, str]], question: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": tool_calls_prompt(question)}]


def tool_message_frame(tokenizer: Any) -> tuple[str, str]:
    """The text a chat template puts between the end of an assistant turn's content and a tool message's
    content (closing the turn, opening the tool's), and after it (closing it, opening the next assistant turn)."""
    messages = [
        {"role": "user", "content": "probe"},
        {"role": "assistant", "content": _ASSISTANT_MARK},
        {"role": "tool", "content": _TOOL_MARK},
    ]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # noqa: BLE001 -- any template error means: no tool messages
        raise ConfigError(
            f"rollout.action_format=tool_calls: the chat template cannot render a tool message ({exc})"
        ) from None
    if _ASSISTANT_MARK not in text or _TOOL_MARK not in text:
        raise ConfigError(
            "rollout.action_format=tool_calls: the chat template drops tool messages; set model.chat_template to a "
            "template with function calling (pypi:searchr1/models/templates/chatml_tools.jinja for ChatML models)"
        )
    after_assistant = text.split(_ASSISTANT_MARK, 1)[1]
    before, after = after_assistant.split(_TOOL_MARK, 1)
    return before, after


def _check_tools_section(tokenizer: Any, tools: list[dict[str, Any]]) -> None:
    messages = [{"role": "user", "content": "probe"}]
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
    if tools and tools[0]["function"]["name"] not in text:
        raise ConfigError(
            "rollout.action_format=tool_calls: the chat template lists no tools (no tools section); set "
            "model.chat_template=pypi:searchr1/models/templates/chatml_tools.jinja for a ChatML model"
        )
