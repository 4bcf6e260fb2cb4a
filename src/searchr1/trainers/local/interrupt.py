"""Ctrl-C and SIGTERM stop the embedded trainer within seconds, wherever it is.

Without this, Ctrl-C reached asyncio's own handler, which only cancels the training task at its next
``await``: a GRPO update has none, so the run went on until the update ended (15-145 s) and then
printed a KeyboardInterrupt traceback; SIGTERM killed the process without closing W&B.

Here both signals raise :class:`Interrupted` in the main thread at once (a rollout, an update, a model
load); the run's ``finally`` blocks close the engine, the retriever and W&B, and the caller ends the run
in one line with exit status 128 + the signal number (130 for Ctrl-C). What a resume needs is on disk:
the newest checkpoint, and its metrics line before it. A step that commits (logs its metrics, writes
its checkpoint) finishes that first, so no half-written step is left. A second signal exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Iterator, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, like KeyboardInterrupt: ``except Exception`` in a
    worker or a retry loop must not swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class SignalStop:
    """Turns SIGINT and SIGTERM into :class:`Interrupted` while it is entered (main thread only)."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._committing = 0

    def __enter__(self) -> "SignalStop":
        self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        """A step's commit (metrics line, checkpoint) completes before a signal that arrives meanwhile stops it."""
        self._committing += 1
        try:
            yield
        finally:
            self._committing -= 1
        if self.received is not None and not self._committing:
            raise Interrupted(self.received)

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            os._exit(128 + signum)  # a second signal while the first one's cleanup runs: stop now
        self.received = signum
        if not self._committing:
            raise Interrupted(signum)
