"""The problems a user fixes (a config key, a missing file, an index to build) share one base class, and
every entry point turns one into its one-line message (exit 2, no traceback) through
:func:`exit_on_user_error`; the Hydra programs log it into the run's log instead (``entry.run_checked``).

A leaf (standard library only) so every floor, reports included, can raise it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A problem the user fixes; its message is one line that names what to change (key, file, command)."""


@contextmanager
def exit_on_user_error(program: str, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Print a :class:`UserError` (or one of ``also``: errors a tool's inputs raise as built-in types)
    as ``program: error: message`` on stderr, the way argparse reports a bad flag, and exit 2."""
    caught: tuple[type[Exception], ...] = (UserError, *also)
    try:
        yield
    except caught as exc:
        print(f"{program}: error: {exc}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None
