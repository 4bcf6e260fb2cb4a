"""The generation-engine interface: token ids in, token ids + logprobs out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    """Stop strings; the engine keeps the stop text and its tokens in the output."""


@dataclass(frozen=True)
class EngineOutput:
    token_ids: list[int]
    logprobs: list[float]
    """Log-probability of each sampled token under the engine (1:1 with token_ids)."""
    finish_reason: FinishReason


class Engine(Protocol):
    async def generate(self, input_ids: Sequence[int], params: SamplingParams) -> EngineOutput: ...


class Tokenizer(Protocol):
    """The subset of a Hugging Face tokenizer the rollout uses."""

    eos_token_id: int | None

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...
