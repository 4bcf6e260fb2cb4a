"""A run's tools bound to their clients: the grammar the policy writes, and the calls the rollout makes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

from searchr1.config.schema import RolloutConfig
from searchr1.tools.base import ToolCall, ToolClient, ToolContext, ToolOutput, ToolSpec
from searchr1.tools.chat_format import TagFormat, ToolCallFormat
from searchr1.tools.registry import tool_spec

log = logging.getLogger(__name__)

ActionFormat = Union[TagFormat, ToolCallFormat]
_DEFAULT_INVALID_ACTION_TEXT = RolloutConfig.__dataclass_fields__["invalid_action_text"].default


@dataclass
class BoundTool:
    spec: ToolSpec
    client: ToolClient


class Toolbox:
    """What the rollout calls tools through. ``call`` never raises: a tool's own bug is a failed call."""

    def __init__(self, tools: Sequence[BoundTool], action_format: Optional[ActionFormat] = None) -> None:
        self.tools = {bound.spec.tag: bound for bound in tools}
        self.format = action_format or TagFormat(self.specs)
        self.grammar = self.format.grammar

    @property
    def specs(self) -> list[ToolSpec]:
        return [bound.spec for bound in self.tools.values()]

    def prompt_messages(self, stored: list[dict[str, str]], question: str) -> list[dict[str, str]]:
        """The chat messages of a prompt (render them with ``template_tools`` as the template's tools)."""
        return self.format.prompt_messages(stored, question)

    @property
    def template_tools(self) -> Optional[list[dict[str, Any]]]:
        """The tools' JSON schemas for the chat template's tools section (tool_calls), else None."""
        return self.format.template_tools

    def error_observation(self, message: str) -> str:
        """What a malformed call (tool_calls) is answered with."""
        return self.format.error_observation(message)

    async def call(self, tag: str, argument: str) -> tuple[str, ToolCall]:
        """The observation text to append, and the call's record."""
        bound = self.tools[tag]
        started = time.perf_counter()
        try:
            output = await bound.client.call(argument)
        except Exception as exc:  # noqa: BLE001 -- a tool must never take a rollout batch down
            log.warning("tool %s raised %s: %s (counted as a failed call)", tag, type(exc).__name__, exc)
            output = ToolOutput(f"The {tag} tool failed: internal error.", failed=True, error=repr(exc))
        seconds = time.perf_counter() - started
        return self.format.observation(bound.spec, output), ToolCall(tag, argument, output.failed, seconds)

    def invalid_action_text(self, configured: str) -> str:
        """The correction after a turn with no valid action: ``rollout.invalid_action_text``, or, while that is
        the default (which names search's tags only), the format's own wording for the run's tools."""
        if configured != _DEFAULT_INVALID_ACTION_TEXT:
            return configured
        return self.format.invalid_action_text(configured)

    def stats_and_reset(self) -> dict[str, float]:
        """Every tool's own counters (e.g. ``search/*``) since the last call."""
        stats: dict[str, float] = {}
        for bound in self.tools.values():
            stats.update(bound.client.stats_and_reset())
        return stats

    async def close(self) -> None:
        for bound in self.tools.values():
            await bound.client.close()


def open_toolbox(
    nodes: Mapping[str, Any], ctx: ToolContext, *, action_format: str = "tags", tokenizer: Any = None
) -> Toolbox:
    """Clients for the tools in ``nodes`` (name -> config node, in the run's order), built for this process,
    speaking ``action_format`` (tool_calls renders through ``tokenizer``'s chat template); config problems raise
    ConfigError here."""
    specs = {name: tool_spec(name).for_node(node) for name, node in nodes.items()}
    fmt: Optional[ActionFormat] = None
    if action_format == "tool_calls":
        fmt = ToolCallFormat(list(specs.values()), tokenizer)
    return Toolbox([BoundTool(specs[name], specs[name].build(node, ctx)) for name, node in nodes.items()], fmt)
