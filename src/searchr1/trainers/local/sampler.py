"""Which prompts each step trains on: a seeded order per epoch, with a position that checkpoints."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass


@dataclass
class PromptSampler:
    """Walks a per-epoch permutation of ``size`` prompts, ``per_step`` at a time, across epochs."""

    size: int
    per_step: int
    seed: int
    shuffle: bool = True
    epoch: int = 0
    position: int = 0

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError("the training split is empty")

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
        return indices

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def as_dict(self) -> dict:
        return asdict(self)
