"""Miles-shaped stand-ins for hook tests where Miles is not importable.

``FakeSample`` mirrors the fields of ``miles.utils.types.Sample`` (radixark/miles@31f1ca9) that the
rollout, reward, logging and training paths read, with the same ``Status`` values and the same
``validate()`` checks. ``miles_args`` builds ``args`` the way Miles does: parsed flags, then every
top-level key of the ``--custom-config-path`` YAML set on it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml


@dataclass
class FakeSample:
    group_index: int | None = None
    index: int | None = None
    prompt: str | list[dict[str, str]] = ""
    tokens: list[int] = field(default_factory=list)
    response: str = ""
    response_length: int = 0
    label: Any = None
    reward: float | dict[str, Any] | None = None
    loss_mask: list[int] | None = None
    rollout_log_probs: list[float] | None = None
    weight_versions: list[str] = field(default_factory=list)

    class Status(Enum):
        PENDING = "pending"
        COMPLETED = "completed"
        TRUNCATED = "truncated"
        ABORTED = "aborted"
        FAILED = "failed"

    status: Status = Status.PENDING
    metadata: dict = field(default_factory=dict)
    non_generation_time: float = 0.0

    @property
    def effective_response_length(self) -> int:
        return sum(self.loss_mask) if self.loss_mask is not None else self.response_length

    def validate(self) -> None:
        assert self.response_length >= 0
        assert len(self.tokens) >= self.response_length
        if self.loss_mask is not None:
            assert len(self.loss_mask) == self.response_length
        if self.rollout_log_probs is not None:
            assert len(self.rollout_log_probs) == self.response_length


@dataclass
class FakeState:
    """The GenerateState fields a new-form generate function may touch."""

    args: Any
    tokenizer: Any
    aborted: bool = False
    processor: Any = None


def miles_args(custom_config: Path, *, router_url: str = "http://127.0.0.1:1", **flags: Any) -> argparse.Namespace:
    host, port = router_url.removeprefix("http://").rsplit(":", 1)
    args = argparse.Namespace(sglang_router_ip=host, sglang_router_port=int(port), reward_key="total",
                              global_batch_size=256, context_parallel_size=1, **flags)
    for key, value in yaml.safe_load(custom_config.read_text()).items():
        setattr(args, key, value)  # what Miles does with --custom-config-path, unchecked
    return args
