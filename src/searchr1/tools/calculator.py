"""The calculator tool: ``<calculator> (1990 - 1952) * 2 </calculator>`` -> ``<result>76</result>``.

Exact arithmetic by the parser of :mod:`searchr1.tools.calculator_engine` (never ``eval``); a refused or
impossible expression is a failed call whose observation says why, so the policy can fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from searchr1.config.checks import check_range
from searchr1.config.schema import ToolConfig
from searchr1.tools.base import InProcessTool, ToolContext, ToolOutput, ToolSpec
from searchr1.tools.calculator_engine import CalculatorError, CalculatorLimits, evaluate_expression


@dataclass(kw_only=True)
class CalculatorConfig(ToolConfig):
    """The calculator tool: exact arithmetic on one expression."""

    NODE: ClassVar[str] = "calculator"
    enabled: bool = True
    """false: every call answers that the calculator is unavailable (an ablation)."""
    max_chars: int = 1000
    """Longest expression accepted, in characters."""
    max_digits: int = 1000
    """Most digits any number may have; larger results (10**10**10) are refused before they are computed."""
    decimals: int = 10
    """Digits after the point for a result that is not a terminating decimal (sqrt(2), 1/3)."""
    timeout_s: float = 1.0
    """Seconds of computation one expression may take."""

    def __post_init__(self) -> None:
        check_range("calculator.max_chars", self.max_chars, low=1, high=1_000_000)
        check_range("calculator.max_digits", self.max_digits, low=1, high=4000)
        check_range("calculator.decimals", self.decimals, low=0, high=100)
        check_range("calculator.timeout_s", self.timeout_s, low=0.001, high=60)


UNAVAILABLE = "The calculator is unavailable right now. Answer with what you know."


class Calculator(InProcessTool):
    """Runs in the rollout's own thread: each expression is bounded in size, depth and time by its limits."""

    def __init__(self, cfg: CalculatorConfig) -> None:
        self._enabled = cfg.enabled
        self._limits = CalculatorLimits(
            max_chars=cfg.max_chars, max_digits=cfg.max_digits, decimals=cfg.decimals, timeout=cfg.timeout_s
        )

    async def call(self, argument: str) -> ToolOutput:
        if not self._enabled:
            return ToolOutput(UNAVAILABLE, failed=True, error="calculator.enabled=false")
        try:
            return ToolOutput(evaluate_expression(argument, self._limits))
        except CalculatorError as exc:
            return ToolOutput(f"Error: {exc}", failed=True, error=str(exc))


def build(cfg: CalculatorConfig, ctx: ToolContext) -> Calculator:
    return Calculator(cfg)


TOOL = ToolSpec(
    name="calculator",
    config_cls=CalculatorConfig,
    description="Exact arithmetic on one expression: + - * / ** ( ), sqrt, abs, round, floor, ceil, min, max.",
    argument="expression",
    argument_description="The arithmetic expression to evaluate, e.g. (1990 - 1952) * 2.",
    example="(1990 - 1952) * 2",
    build=build,
)
