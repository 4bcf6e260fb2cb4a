"""The one lookup from a tool's name to its spec: every tool is a ``searchr1.tools`` entry point.

searchr1's own tools (search, calculator, python, http) are registered in its pyproject.toml like any other
package's; :mod:`searchr1.config.plugins` reads the entry points, this module checks what they hold.
"""

from __future__ import annotations

from typing import Any, Mapping

from searchr1.config.checks import ConfigError, check_choice
from searchr1.config.plugins import ENTRY_POINT_GROUP, registered_tools
from searchr1.tools.base import ToolSpec


def tool_specs() -> dict[str, ToolSpec]:
    specs = registered_tools()
    for name, spec in specs.items():
        if not isinstance(spec, ToolSpec):
            raise ConfigError(
                f"the {ENTRY_POINT_GROUP} entry point {name!r} holds a {type(spec).__name__}, not a ToolSpec"
            )
    return specs


def tool_spec(name: str) -> ToolSpec:
    specs = tool_specs()
    check_choice("tools", name, specs)
    return specs[name]


def selected_nodes(cfg: Any) -> dict[str, Any]:
    """The run's tools (``tools=[...]``) in order, each with its config node."""
    return {name: getattr(cfg, name) for name in cfg.tools}


def typed_nodes(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Tool nodes from their plain fields (``dataclasses.asdict``), typed again, e.g. on a Miles worker."""
    return {name: tool_spec(name).config_cls(**fields) for name, fields in raw.items()}
