"""Ctrl-C and SIGTERM stop the embedded trainer within seconds, in one line, with exit status 128 + signal,
leaving the newest checkpoint to resume from; a step's commit (metrics line, checkpoint) finishes first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from searchr1.trainers.local.interrupt import Interrupted, SignalStop
from tests.support.data import TINY_ROLLOUT


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.5)  # the handler runs here, in the main thread


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_raises_interrupted_at_once_and_the_old_handlers_come_back(signum, code):
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as info:
        with SignalStop():
            started = time.monotonic()
            _deliver(signum)
    assert time.monotonic() - started < 0.5 and info.value.exit_code == code
    assert signal.getsignal(signum) is before


def test_a_signal_during_a_commit_stops_once_the_commit_is_done():
    done = []
    with pytest.raises(Interrupted):
        with SignalStop() as stop:
            with stop.committing():
                _deliver(signal.SIGINT)
                done.append("checkpoint written")
            done.append("next step")
    assert done == ["checkpoint written"]


# Step 1 runs for real (its checkpoint is written); step 2's update then blocks for 10 minutes, as a long
# CPU update does. asyncio's own Ctrl-C handler used to wait for it to end, then print a traceback.
_DRIVER = """
import pathlib, sys, time
import searchr1.trainers.local.train as train

real, calls, marker = train.grpo_update, [], pathlib.Path(sys.argv[1])

def grpo_update(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        marker.write_text("updating")
        time.sleep(600)
    return real(*args, **kwargs)

train.grpo_update = grpo_update
from searchr1.cli import main
sys.argv = ["searchr1", *sys.argv[2:]]
main()
"""


@pytest.mark.slow
def test_ctrl_c_during_an_update_stops_in_seconds_in_one_line_with_exit_130(tmp_path):
    marker, run_dir = tmp_path / "updating", tmp_path / "run"
    overrides = [*TINY_ROLLOUT, "trainer.steps=2", "logger.mode=disabled", f"hydra.run.dir={run_dir}"]
    log = tmp_path / "output.txt"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(marker), *overrides], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), log.read_text()[-3000:]
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        proc.wait(timeout=60)
        stopped_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert proc.returncode == 130, output[-3000:]
    assert stopped_s < 20, f"took {stopped_s:.1f}s"
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    (line,) = [line for line in output.splitlines() if "stopped by SIGINT" in line]
    assert f"the newest checkpoint is step 1 in {run_dir / 'checkpoints'}" in line
    assert f"trainer.resume=true hydra.run.dir={run_dir}" in line
