"""A tool that exists only in the tests: ``<reverse>abc</reverse>`` -> ``<result>cba</result>``.

Registered the way a user's own package registers one (a ``searchr1.tools`` entry point, see
:func:`install_reverse_tool`), never by editing searchr1.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from searchr1.config.schema import ToolConfig
from searchr1.tools.base import ToolOutput, ToolSpec


@dataclass(kw_only=True)
class ReverseConfig(ToolConfig):
    NODE: ClassVar[str] = "reverse"
    uppercase: bool = False
    """Answer in capitals."""


@dataclass
class Reverse:
    cfg: ReverseConfig
    closed: bool = False

    async def call(self, argument: str) -> ToolOutput:
        if not argument:
            raise ValueError("nothing to reverse")  # a tool bug: the toolbox must turn it into a failed call
        text = argument[::-1]
        return ToolOutput(text.upper() if self.cfg.uppercase else text)

    def stats_and_reset(self) -> dict[str, float]:
        return {"tool/reverse/own_counter": 1.0}

    async def close(self) -> None:
        self.closed = True


TOOL = ToolSpec(
    name="reverse",
    config_cls=ReverseConfig,
    description="Reverse a word.",
    argument="word",
    argument_description="The word to reverse.",
    example="olleh",
    build=lambda node, ctx: Reverse(node),
)


def install_reverse_tool(
    monkeypatch: pytest.MonkeyPatch, root: Path, *, target: str = "tests.support.reverse_tool:TOOL"
) -> Any:
    """A distribution on sys.path whose only content is the entry point, as ``pip install`` of a user's
    package would leave it."""
    dist = root / "reverse_tool-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reverse-tool\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[searchr1.tools]\nreverse = {target}\n")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return TOOL
