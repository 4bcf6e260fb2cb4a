"""The search interface the rollout talks to. Backends never raise into the rollout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol


@dataclass(frozen=True)
class Passage:
    """One retrieved passage in Search-R1's corpus shape: contents is '"Title"\\ntext'."""

    contents: str
    id: Optional[str] = None
    score: Optional[float] = None


@dataclass(frozen=True)
class SearchResult:
    """What one search call produced. ``failed`` results carry an error and no passages."""

    query: str
    passages: tuple[Passage, ...] = ()
    failed: bool = False
    error: Optional[str] = None
    cached: bool = False
    latency_s: float = 0.0


@dataclass
class SearchStats:
    """Counters a backend stack accumulates; trainers read and reset them once per step."""

    calls: int = 0
    failures: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    retries: int = 0
    billed: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class SearchBackend(Protocol):
    """``search`` must return a SearchResult for every call (failed=True on errors), never raise."""

    name: str

    async def search(self, query: str, topk: int) -> SearchResult: ...

    def stats_and_reset(self) -> dict[str, float]:
        """This step's ``search/*`` counters; they start again from zero."""
        ...

    async def close(self) -> None: ...
