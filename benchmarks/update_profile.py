"""Where the embedded trainer's GRPO update spends its time, and what each of its speed-ups is worth.

Takes one step's rollout batch from a quickstart run's ``rollouts.jsonl`` (the token ids and loss masks
the engine produced) and runs the embedded trainer's update on it (``grpo_update``: the policy with the
shipped warm start, LoRA rank 16, gradient checkpointing, 128-token vocabulary slices, the trainer's
heap setting) in variants, one after the other in this process:

- as shipped;
- PEFT's own LoRA forward instead of the fused one (``models.lora.fused_lora_linear``);
- micro-batches in the group's order instead of by response length (``grpo.length_batches``);
- both, i.e. the update as it was before these two changes;
- as shipped on one torch thread (``trainer.threads=1``) instead of ``--threads``.

For each: wall seconds, CPU seconds (user and system: the system part is mostly page faults of freshly
mapped tensors, trainers/local/heap.py), minor page faults, and the split between the logprob
forward with gradients, the no-grad rescoring (``health/update_kl``) and the rest (the backward, its
recomputed forwards, the optimizer step), then the ratios to "as shipped". The loss and gradient norm
of every variant are printed too: the variants compute the same update up to float rounding.

    python -m searchr1 hydra.run.dir=/tmp/qs          # once: a quickstart run whose batch is replayed
    python benchmarks/update_profile.py --rollouts /tmp/qs/rollouts.jsonl [--step 1] [--threads 0]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from unittest import mock

import torch
from omegaconf import OmegaConf

from searchr1.config.compose import compose_config
from searchr1.config.schema import LocalTrainerConfig, SearchR1Config
from searchr1.metrics_file import read_records
from searchr1.models.lora import fused_lora_linear
from searchr1.trainers.local import grpo
from searchr1.trainers.local.heap import map_large_allocations
from searchr1.trainers.local.train import build_models


@dataclass
class Timing:
    wall_s: float
    user_s: float
    sys_s: float
    minor_faults: int
    forward_s: float
    rescoring_s: float
    loss: float
    grad_norm: float


def load_groups(path: Path, step: int, group_size: int) -> list[grpo.Group]:
    rows = [r for r in read_records(path) if r["step"] == step]
    if not rows or len(rows) % group_size:
        raise SystemExit(f"{path}: step {step} has {len(rows)} samples, not whole groups of {group_size}")
    groups = []
    for start in range(0, len(rows), group_size):
        group = rows[start : start + group_size]
        groups.append(
            grpo.Group(
                prompt_ids=group[0]["prompt_ids"],
                responses=[r["response_ids"] for r in group],
                loss_masks=[r["loss_mask"] for r in group],
                rollout_logprobs=[[0.0] * len(r["response_ids"]) for r in group],  # TIS is off in the quickstart
                advantages=grpo.group_advantages([r["reward"] for r in group], group_size),
            )
        )
    return groups


def group_order_batches(group: grpo.Group, micro_batch_size: int) -> list[tuple[int, ...]]:
    """The chunking before length batches: consecutive rows in the group's order."""
    count = len(group.responses)
    return [tuple(range(s, min(s + micro_batch_size, count))) for s in range(0, count, micro_batch_size)]


@contextlib.contextmanager
def peft_lora_forward() -> Iterator[None]:
    from peft.tuners.lora.layer import Linear

    with mock.patch.object(fused_lora_linear(), "forward", Linear.forward):
        yield


@contextlib.contextmanager
def group_order() -> Iterator[None]:
    with mock.patch.object(grpo, "length_batches", group_order_batches):
        yield


@contextlib.contextmanager
def both_before() -> Iterator[None]:
    with peft_lora_forward(), group_order():
        yield


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def timed_update(cfg: SearchR1Config, groups: list[grpo.Group], variant: Callable[[], Any]) -> Timing:
    models, trainer = build_models(cfg), LocalTrainerConfig.of(cfg)
    optimizer = torch.optim.AdamW([p for p in models.policy.parameters() if p.requires_grad], lr=trainer.lr)
    spent = {"forward": 0.0, "rescoring": 0.0}
    real_score = grpo.score_responses

    def score(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real_score(*args, **kwargs)
        finally:
            spent["forward" if torch.is_grad_enabled() else "rescoring"] += time.perf_counter() - started

    before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with variant(), mock.patch.object(grpo, "score_responses", score):
        metrics = grpo.grpo_update(
            models.policy, None, groups, optimizer, trainer, cfg.grpo, cfg.tis, temperature=1.0, pad_token_id=0
        )
    wall, after = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_SELF)
    return Timing(
        wall_s=wall,
        user_s=after.ru_utime - before.ru_utime,
        sys_s=after.ru_stime - before.ru_stime,
        minor_faults=after.ru_minflt - before.ru_minflt,
        forward_s=spent["forward"],
        rescoring_s=spent["rescoring"],
        loss=metrics["train/loss"],
        grad_norm=metrics["train/grad_norm"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=Path, required=True, help="a quickstart run's rollouts.jsonl")
    parser.add_argument("--step", type=int, default=1, help="which step's batch to replay")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, as shipped)")
    parser.add_argument("--repeats", type=int, default=1, help="updates per variant (the fastest counts)")
    args = parser.parse_args()
    cfg: SearchR1Config = OmegaConf.to_object(compose_config([], return_hydra_config=False))  # type: ignore[assignment]
    if args.threads:
        torch.set_num_threads(args.threads)
    map_large_allocations()  # as the trainer runs
    groups = load_groups(args.rollouts, args.step, cfg.rollout.n_samples_per_prompt)
    lengths = [len(r) for g in groups for r in g.responses]
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"step {args.step}: {len(groups)} groups, response lengths {lengths}, {torch.get_num_threads()} threads")
    variants: dict[str, Callable[[], Any]] = {
        "as shipped": contextlib.nullcontext,
        "PEFT's LoRA forward": peft_lora_forward,
        "micro-batches in group order": group_order,
        "both (the update before)": both_before,
        "as shipped, 1 thread": lambda: threads(1),
    }
    results: dict[str, Timing] = {}
    for name, variant in variants.items():
        for _ in range(args.repeats):
            timing = timed_update(cfg, groups, variant)
            if name not in results or timing.wall_s < results[name].wall_s:
                results[name] = timing
    shipped = results["as shipped"]
    print(
        f"\n{'variant':32s} {'wall s':>7s} {'user s':>7s} {'sys s':>6s} {'faults':>9s} "
        f"{'fwd s':>6s} {'rescore':>7s} {'rest s':>6s} {'x wall':>6s}  loss / grad norm"
    )
    for name, t in results.items():
        rest = t.wall_s - t.forward_s - t.rescoring_s
        print(
            f"{name:32s} {t.wall_s:7.1f} {t.user_s:7.1f} {t.sys_s:6.1f} {t.minor_faults:9d} {t.forward_s:6.1f} "
            f"{t.rescoring_s:7.1f} {rest:6.1f} {t.wall_s / shipped.wall_s:6.2f}  {t.loss:.6f} / {t.grad_norm:.6f}"
        )
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
