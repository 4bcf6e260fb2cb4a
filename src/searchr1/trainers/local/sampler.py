"""Which prompts each step trains on: a seeded order per epoch, with a position that checkpoints."""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass, field


@dataclass
class PromptSampler:
    """Walks a per-epoch permutation of ``size`` prompts, ``per_step`` at a time, across epochs."""

    size: int
    per_step: int
    seed: int
    shuffle: bool = True
    sources: list[str] = field(default_factory=list)
    """With ``balance``: each prompt's data_source (``size`` of them)."""
    balance: bool = False
    """Take turns over ``sources`` (data.balance_sources)."""
    epoch: int = 0
    position: int = 0

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError("the training split is empty")
        if self.balance and len(self.sources) != self.size:
            raise ValueError(f"balancing needs one data_source per prompt: {len(self.sources)} for {self.size}")

    def next_batch(self) -> list[int]:
        batch: list[int] = []
        while len(batch) < self.per_step:
            order = self.order(self.epoch)
            take = order[self.position : self.position + self.per_step - len(batch)]
            batch += take
            self.position += len(take)
            if self.position >= self.size:
                self.epoch, self.position = self.epoch + 1, 0
        return batch

    def order(self, epoch: int) -> list[int]:
        indices = list(range(self.size))
        if self.shuffle:
            random.Random(f"{self.seed}:{epoch}").shuffle(indices)
        if not self.balance:
            return indices
        # Each source keeps the epoch's shuffled order; sources are visited in sorted order.
        by_source = [[i for i in indices if self.sources[i] == name] for name in sorted(set(self.sources))]
        return [i for turn in itertools.zip_longest(*by_source) for i in turn if i is not None]

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def as_dict(self) -> dict:
        return asdict(self)
