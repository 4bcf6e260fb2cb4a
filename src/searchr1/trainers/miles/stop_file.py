"""The health stop file, ``<run dir>/health_stop``: how a health rule with action=stop, fired in Miles'
rollout process, ends the run. The rollout hooks write and honour it (rollout_log.py, generate.py); the
launcher (driver side) removes an earlier launch's before it starts, and imports only this module of them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

HEALTH_STOP_FILE = "health_stop"
"""In the run dir: a health rule with action=stop fired (the file says which); the hooks end the run."""


def request_stop(args: Any, run_dir: Path, reason: str) -> None:
    """End the run after this rollout's training step, with a checkpoint when Miles saves (--save).

    Miles gives a hook no way to end its loop, so: ``<run dir>/health_stop`` makes every later generate
    call return at once, and the next rollout-log call raises :class:`HealthStopError`, which ends the job
    before that rollout trains. With ``--save-trigger-sentinel PATH`` the hook also creates PATH, and
    Miles saves a checkpoint right after this rollout's step; otherwise the last --save-interval
    checkpoint is the one to resume from."""
    (run_dir / HEALTH_STOP_FILE).write_text(reason + "\n")
    sentinel = getattr(args, "save_trigger_sentinel", None)
    if sentinel:
        Path(sentinel).touch()
    log.warning(
        "health: stopping the Miles run after this rollout's step (%s)%s",
        run_dir / HEALTH_STOP_FILE,
        f"; Miles saves a checkpoint first ({sentinel})" if sentinel else "",
    )


def stop_reason(run_dir: Path) -> Optional[str]:
    path = run_dir / HEALTH_STOP_FILE
    return path.read_text().strip() if path.exists() else None


def clear_stop(run_dir: Path) -> Optional[str]:
    """Remove the stop file an earlier launch left in the run dir (a resumed or reused run dir): a new
    launch starts unstopped. Returns the old file's reason, None when there was none."""
    reason = stop_reason(run_dir)
    if reason is not None:
        (run_dir / HEALTH_STOP_FILE).unlink(missing_ok=True)
    return reason
