"""While the engine works, the console shows it moving: a line every few seconds with the samples in
flight, turns done and tokens/s, named by the caller until the next clear_prefix_cache."""

from __future__ import annotations

import asyncio
import logging

from searchr1.engines import progress
from searchr1.engines.base import SamplingParams
from searchr1.engines.local import LocalEngine
from tests.support.local_trainer import tiny_llama


def test_the_line_counts_since_the_start_of_the_tracked_work():
    tracked = progress.Progress()
    tracked.start("step 2 rollout", samples=10, tokens=500, turns=7)
    line = tracked.line(tokens=800, turns=19, in_flight=4, now=tracked.started + 30)
    assert line == (
        "step 2 rollout: 30 s, 4 of 10 samples generating, 6 done or searching, 12 turns done, "
        "300 tokens (10.0 tokens/s)"
    )


async def test_the_engine_logs_progress_while_it_generates(tokenizer, monkeypatch, caplog):
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    engine = LocalEngine(tiny_llama(), tokenizer, max_batch=4)
    engine.track("step 1 rollout", samples=3)
    prompt = tokenizer.encode("Who wrote the book?", add_special_tokens=False)
    with caplog.at_level(logging.INFO, logger="searchr1.engines"):
        await asyncio.gather(*(engine.generate(prompt, SamplingParams(max_new_tokens=4)) for _ in range(3)))
        # The worker logs a round when the round's thread returns; the calls can see their results first.
        for _ in range(500):
            lines = [r.getMessage() for r in caplog.records if r.name == "searchr1.engines"]
            if lines and "3 turns done" in lines[-1]:
                break
            await asyncio.sleep(0.01)
    assert lines and all(line.startswith("step 1 rollout: ") for line in lines)
    assert "3 of 3 samples generating" in lines[0]
    assert "3 turns done, 12 tokens (" in lines[-1]
    engine.clear_prefix_cache()  # the tracked work ends with the rollout
    assert engine._progress.label == "engine"
    await engine.close()
