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
    prefix_cache_info: dict = field(default_factory=lambda: {"cached_tokens": 0, "total_prompt_tokens": 0})

    def update_from_meta_info(self, args: Any, meta_info: dict) -> None:
        """As Miles' (types.py:276-297): prefix-cache counts, weight versions, a status from the finish reason."""
        _ = args.sglang_speculative_algorithm  # Miles reads it first (speculative-decoding counts)
        self.prefix_cache_info["cached_tokens"] += meta_info.get("cached_tokens", 0)
        self.prefix_cache_info["total_prompt_tokens"] += meta_info.get("prompt_tokens", 0)
        if "weight_version" in meta_info:
            self.weight_versions.append(meta_info["weight_version"])
        status = {"length": "TRUNCATED", "abort": "ABORTED", "stop": "COMPLETED"}.get(
            meta_info["finish_reason"]["type"]
        )
        if status:
            self.status = self.Status[status]

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
    args = argparse.Namespace(
        sglang_router_ip=host,
        sglang_router_port=int(port),
        reward_key="total",
        global_batch_size=256,
        context_parallel_size=1,
        sglang_speculative_algorithm=None,
        **flags,
    )
    for key, value in yaml.safe_load(custom_config.read_text()).items():
        setattr(args, key, value)  # what Miles does with --custom-config-path, unchecked
    return args


def miles_install(root: Path) -> list[str]:
    """A minimal Miles/Megatron/checkpoint/data layout under ``root`` that passes preflight; the
    overrides that point the paper preset at it (backend google: no retriever needed)."""
    (root / "miles").mkdir(parents=True)
    (root / "miles" / "train.py").write_text("")
    (root / "Megatron-LM" / "megatron").mkdir(parents=True)
    (root / "hf").mkdir()
    (root / "hf" / "config.json").write_text("{}")
    (root / "torch_dist").mkdir()
    (root / "torch_dist" / "latest_checkpointed_iteration.txt").write_text("release")
    (root / "data").mkdir()
    for name in ("train.parquet", "test.parquet", "corpus.jsonl"):
        (root / "data" / name).write_text("")
    return [
        "+experiment=grpo-qwen2.5-3b-1n8g-paper",
        "backend=google",
        f"trainer.miles_root={root / 'miles'}",
        f"trainer.megatron_root={root / 'Megatron-LM'}",
        f"model.hf_checkpoint={root / 'hf'}",
        f"model.ref_load={root / 'torch_dist'}",
        f"data.train_path={root / 'data' / 'train.parquet'}",
        f"data.test_path={root / 'data' / 'test.parquet'}",
        f"data.corpus_path={root / 'data' / 'corpus.jsonl'}",
    ]


FAKE_RAY = '''#!{python}
"""Stands in for the ray CLI: records each call (argv, and the runtime env file it was given).
``start --block`` stays up like Ray's until SIGTERM, and records that it was stopped that way."""
import json, os, signal, sys, time
argv = sys.argv[1:]
record = {{"argv": argv}}
if "--runtime-env" in argv:
    record["runtime_env"] = open(argv[argv.index("--runtime-env") + 1]).read()
def write(entry):
    with open(os.environ["FAKE_RAY_RECORD"], "a") as out:
        out.write(json.dumps(entry) + "\\n")
blocking = argv[:1] == ["start"] and "--block" in argv and not os.environ.get("FAKE_RAY_START_EXIT")
if blocking:  # before the record: a SIGTERM right after it is recorded too
    def stopped(signum, frame):
        write({{"argv": argv, "signal": signal.Signals(signum).name}})
        sys.exit(0)
    signal.signal(signal.SIGTERM, stopped)
write(record)
print("fake ray:", " ".join(argv[:2]), flush=True)
if argv[:1] == ["start"] and os.environ.get("FAKE_RAY_START_EXIT"):  # e.g. a Ray already runs on this node
    sys.exit(int(os.environ["FAKE_RAY_START_EXIT"]))
if blocking:
    while True:
        time.sleep(0.1)
sys.exit(int(os.environ.get("FAKE_RAY_EXIT", "0")) if argv[:2] == ["job", "submit"] else 0)
'''


def install_fake_ray(bin_dir: Path, python: str) -> Path:
    """Write a ``ray`` executable into ``bin_dir`` (put it first on PATH); returns its record file."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    ray = bin_dir / "ray"
    ray.write_text(FAKE_RAY.format(python=python))
    ray.chmod(0o755)
    return bin_dir / "ray_calls.jsonl"
