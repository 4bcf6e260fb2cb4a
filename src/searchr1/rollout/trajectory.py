"""One sample's multi-turn trajectory, with exact token accounting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

Status = Literal["completed", "truncated", "aborted"]


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
    search_calls: int = 0
    search_failures: int = 0
    observation_tokens: int = 0
    invalid_actions: int = 0
    queries: list[str] = field(default_factory=list)
    final_answer: Optional[str] = None
    status: Status = "completed"
    search_seconds: float = 0.0
    """Wall time spent waiting for search (Miles: non_generation_time)."""
