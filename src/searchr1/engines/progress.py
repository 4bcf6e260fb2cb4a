"""A console line every few seconds while the embedded engine works, so a rollout or an eval that
takes minutes shows it is moving: samples in flight, turns done, tokens generated and the rate.

The engine cannot tell a sample that is done from one waiting on its search (both have no call in
flight); with searches taking milliseconds, the line counts them together.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger("searchr1.engines")

EVERY_S = 10.0
"""Seconds between progress lines."""


@dataclass
class Progress:
    """What the engine has done since ``start`` (the counters are the engine's running totals)."""

    label: str = "engine"
    samples: int = 0
    """Samples the caller will send (0: unknown)."""
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)
    tokens_before: int = 0
    turns_before: int = 0

    def start(self, label: str, samples: int, tokens: int, turns: int) -> None:
        self.label, self.samples = label, samples
        self.started = self.last = time.monotonic()
        self.tokens_before, self.turns_before = tokens, turns

    def tick(self, tokens: int, turns: int, in_flight: int) -> None:
        """Log a line when EVERY_S has passed since the last one."""
        now = time.monotonic()
        if now - self.last < EVERY_S:
            return
        self.last = now
        log.info("%s", self.line(tokens, turns, in_flight, now))

    def line(self, tokens: int, turns: int, in_flight: int, now: float) -> str:
        elapsed = now - self.started
        generated = tokens - self.tokens_before
        samples = (
            f"{in_flight} of {self.samples} samples generating, {self.samples - in_flight} done or searching"
            if self.samples
            else f"{in_flight} calls generating"
        )
        return (
            f"{self.label}: {elapsed:.0f} s, {samples}, {turns - self.turns_before} turns done, "
            f"{generated} tokens ({generated / max(elapsed, 1e-9):.1f} tokens/s)"
        )
