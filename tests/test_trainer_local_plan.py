"""The first lines of a local run: what it is about to do, and roughly how long step 1 takes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from searchr1.config import to_typed
from searchr1.trainers.local.plan import MEASURED_STEP_S, first_step_seconds
from tests.support.compose import compose_config


def test_a_run_starts_by_saying_what_it_will_do_and_how_long_step_1_takes(tmp_path):
    # A data.train_sources that selects no prompt stops the run as it reads its data, right after the lines
    # under test (a preflight problem stops it before them, in one line).
    args = ["logger.mode=disabled", "trainer.steps=3", "data.train_sources=[none]", f"hydra.run.dir={tmp_path}"]
    done = subprocess.run(
        [sys.executable, "-m", "searchr1", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    lines = [line.split(" - ", 1)[1] for line in (done.stdout + done.stderr).splitlines() if " - " in line]
    assert lines[0].startswith("run local-smollm2-135m-")
    assert lines[1] == (
        "about to train smollm2-135m with GRPO on the CPU: 3 steps of 2 prompts x 5 samples, "
        "up to 2 searches (bm25 retriever), 64 tokens a turn"
    )
    assert lines[2].startswith("the model loads first (about a minute the first time), then step 1 takes roughly 40 s")


@pytest.mark.parametrize(
    "overrides,factor",
    [
        ([], 1.0),  # the measured default
        (["trainer.prompts_per_step=4"], 2.0),
        (["rollout.max_turns=5"], 2.0),  # 5 searches and a final turn: 6 turns, not 3
        (["rollout.max_turn_tokens=32", "rollout.final_turn=false"], 1 / 3),
    ],
)
def test_step_1_estimate_scales_with_the_tokens_the_step_may_generate(overrides, factor):
    assert first_step_seconds(to_typed(compose_config(overrides))) == pytest.approx(MEASURED_STEP_S * factor)
