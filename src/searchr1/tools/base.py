"""What a tool is: how the policy calls it, how it is built, checked, shown to the model and measured.

A tool is one :class:`ToolSpec`. The policy calls it by writing ``<name>argument</name>``; the rollout calls
the tool's client with the argument and appends ``spec.render(output)`` as masked observation tokens. Adding
a tool is one module that defines a spec (and its config node, a :class:`ToolConfig` dataclass); see
:mod:`searchr1.tools.registry` for how specs are found.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Protocol

from searchr1.config.schema import ToolConfig


@dataclass(frozen=True)
class ToolOutput:
    """What one call produced. A failed call still has ``text``: the sentence the model is shown."""

    text: str
    failed: bool = False
    error: Optional[str] = None
    """Why the call failed, for logs (may say more than ``text``)."""


@dataclass(frozen=True)
class ToolCall:
    """One tool call of a trajectory."""

    tool: str
    argument: str
    failed: bool = False
    seconds: float = 0.0

    def record(self) -> list:
        """A JSON-friendly form (Miles' Sample.metadata, rollouts.jsonl)."""
        return [self.tool, self.argument, self.failed, self.seconds]


class ToolClient(Protocol):
    """A tool bound to its resources for one process. ``call`` never raises: a failure is a failed output."""

    async def call(self, argument: str) -> ToolOutput: ...

    def stats_and_reset(self) -> dict[str, float]:
        """The tool's own counters since the last call (e.g. ``search/*``); may be empty."""
        ...

    async def close(self) -> None: ...


def cut_observation(text: str, limit: int) -> str:
    """At most ``limit`` characters of a tool's output, with a marker saying how much was cut."""
    return text if len(text) <= limit else text[:limit] + f" … [cut: {len(text) - limit} more characters]"


class InProcessTool:
    """Base of a client that holds no connection and counts nothing beyond the shared tool/<name>/* metrics."""

    def stats_and_reset(self) -> dict[str, float]:
        return {}

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class ToolContext:
    """What building a client may use besides the tool's own node."""

    session: Any
    """The process's one shared ``aiohttp.ClientSession``."""
    run_dir: Optional[Path] = None
    backend: Any = None
    """The search backend node (``backend.*``); only the search tool reads it."""
    retriever_urls: Optional[list[str]] = None
    """A retriever this process started (the embedded one): overrides ``backend.urls``."""


def _no_problems(node: Any, cfg: Any, env: Mapping[str, str]) -> list[str]:
    return []


def _no_endpoints(node: Any, backend: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class ToolSpec:
    """One tool. ``name`` is its key in ``tools=[...]``, its config node, its tag and its metric prefix."""

    name: str
    config_cls: type[ToolConfig]
    description: str
    """One sentence the prompt (and the function-call schema) says about what the tool does."""
    argument: str
    """Name of the tool's one string argument: the text between its tags."""
    argument_description: str
    example: str
    """An argument the prompt shows, e.g. ``(1990 - 1952) * 2``."""
    build: Callable[[Any, ToolContext], ToolClient]
    """(the tool's node, context) -> client. May raise ConfigError for settings only checkable here."""
    observation_tag: str = "result"
    """The output comes back between ``<observation_tag>`` and ``</observation_tag>``."""
    preflight: Callable[[Any, Any, Mapping[str, str]], list[str]] = field(default=_no_problems)
    """(the tool's node, the whole run config, environment) -> problems, one line each naming the key to
    fix; run on the launching machine before any model loads."""
    endpoints_problems: Callable[[Any, Any], list[str]] = field(default=_no_endpoints)
    """(the tool's node, the search backend node) -> problems of the services the tool calls, checked where
    the rollout runs: on this machine for the embedded trainer, on every node of the cluster for Miles."""

    @property
    def tag(self) -> str:
        return self.name

    def for_node(self, node: Any) -> ToolSpec:
        """This spec as configured: a node with a ``description`` field (the http tool's) says what the tool
        does in place of the spec."""
        description = getattr(node, "description", None)
        return dataclasses.replace(self, description=description) if isinstance(description, str) else self

    def render(self, output: ToolOutput) -> str:
        """The observation appended after a call (loss-masked), e.g. ``\\n\\n<result>42</result>\\n\\n``."""
        return f"\n\n<{self.observation_tag}>{output.text}</{self.observation_tag}>\n\n"

    def json_schema(self) -> dict[str, Any]:
        """The tool as an OpenAI-style function schema (what chat templates render in their tools section)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {self.argument: {"type": "string", "description": self.argument_description}},
                    "required": [self.argument],
                },
            },
        }
