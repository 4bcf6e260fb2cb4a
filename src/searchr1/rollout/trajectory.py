"""One sample's multi-turn trajectory, with exact token accounting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

from searchr1.tools.base import ToolCall

Status = Literal["completed", "truncated", "aborted"]
SEARCH = "search"


@dataclass
class Trajectory:
    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    """1 on engine-produced tokens, 0 on observation / correction tokens."""
    rollout_logprobs: list[float] = field(default_factory=list)
    """Engine logprob per response token; 0.0 on masked tokens."""
    response_text: str = ""
    turns: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Every tool call, in order."""
    observation_tokens: int = 0
    """Tokens of tool observations (corrections are masked too but not counted here)."""
    invalid_actions: int = 0
    final_answer: Optional[str] = None
    status: Status = "completed"

    def calls_of(self, tool: str) -> list[ToolCall]:
        return [call for call in self.tool_calls if call.tool == tool]

    @property
    def search_calls(self) -> int:
        return len(self.calls_of(SEARCH))

    @property
    def search_failures(self) -> int:
        return sum(call.failed for call in self.calls_of(SEARCH))

    @property
    def queries(self) -> list[str]:
        """The search queries, in order."""
        return [call.argument for call in self.calls_of(SEARCH)]

    @property
    def tool_seconds(self) -> float:
        """Wall time spent waiting for tools (Miles: non_generation_time)."""
        return sum(call.seconds for call in self.tool_calls)

    def token_record(self) -> dict[str, list[int]]:
        """The ids and mask exactly as rolled out, for sample files that training may reuse (no re-tokenizing)."""
        return {"prompt_ids": self.prompt_ids, "response_ids": self.response_ids, "loss_mask": self.loss_mask}

    def append_generated(self, token_ids: Sequence[int], logprobs: Sequence[float]) -> None:
        """Engine tokens: trained on (mask 1), with the engine's logprobs."""
        self.response_ids.extend(token_ids)
        self.loss_mask.extend([1] * len(token_ids))
        self.rollout_logprobs.extend(logprobs)

    def append_inserted(self, token_ids: Sequence[int]) -> None:
        """Tokens we wrote (observations, corrections): never trained on, placeholder logprob 0.0."""
        self.response_ids.extend(token_ids)
        self.loss_mask.extend([0] * len(token_ids))
        self.rollout_logprobs.extend([0.0] * len(token_ids))
