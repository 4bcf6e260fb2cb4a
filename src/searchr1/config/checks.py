"""One-line validation errors that name the key, the value and what is allowed."""

from __future__ import annotations

import difflib
from typing import Iterable, Optional

from searchr1.errors import UserError


class ConfigError(UserError, ValueError):
    """A config value that composes but makes no sense; its message is one line for the user."""


def check_range(
    key: str,
    value: float,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_inclusive: bool = True,
) -> None:
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and value > high
    if not (too_low or too_high):
        return
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low}")
    if high is not None:
        parts.append(f"<= {high}")
    raise ConfigError(f"{key}={value!r} is out of range; allowed: {' and '.join(parts)}")


def check_choice(key: str, value: object, allowed: Iterable[object]) -> None:
    choices = tuple(allowed)
    if value in choices:
        return
    names = [str(choice) for choice in choices]
    close = difflib.get_close_matches(str(value), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{key}={value!r} is not allowed{hint}; allowed: {', '.join(names)}")
