"""Fabricated run dirs in the exact on-disk shape the trainers leave (metrics.jsonl, resolved_config.yaml,
.hydra/overrides.yaml), for report tests that must not wait for real training."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def make_run(
    run_dir: Path,
    *,
    max_turns: int,
    topk: int,
    seed: int,
    em: list[float],
    sweep_name: str | None = "turns_topk",
    extra_overrides: tuple[str, ...] = (),
    tools: tuple[str, ...] = ("search",),
) -> Path:
    run_dir.mkdir(parents=True)
    config = {
        "seed": seed,
        "sweep_name": sweep_name,
        "rollout": {"max_turns": max_turns},
        "search": {"topk": topk},
        "logger": {"project": "searchr1", "entity": None, "group": sweep_name},
    }
    (run_dir / "resolved_config.yaml").write_text(yaml.safe_dump(config))
    lines = []
    for step, value in enumerate(em, 1):
        lines.append(
            {
                "step": step,
                "reward/exact_match": value,
                "reward/format": 0.2,
                "search_r1/turns_per_sample": 1.0 + 0.1 * max_turns,
                "search_r1/search_calls_per_sample": 0.5 * max_turns,
                "loss_mask/observation_fraction": 0.1 * topk,
                "tis/effective_sample_size": 8.0,
                "search_r1/note": "text is skipped",
                **{f"tool/{tool}/calls_per_sample": 0.5 * step for tool in tools},
                **{f"tool/{tool}/failure_rate": 0.1 for tool in tools},
                **{f"tool/{tool}/latency_mean_s": 0.02 for tool in tools},
            }
        )
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    overrides = [f"rollout.max_turns={max_turns}", f"search.topk={topk}", f"seed={seed}", *extra_overrides]
    if sweep_name:
        overrides.insert(0, f"+sweep={sweep_name}")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return run_dir


def make_sweep(root: Path, turns=(1, 2), topks=(1, 3), seeds=(0, 1)) -> Path:
    """EM rises with max_turns and topk and differs by seed, so the table and heat map have known values."""
    for t in turns:
        for k in topks:
            for s in seeds:
                final = 0.1 * t + 0.01 * k + 0.02 * s
                make_run(
                    root / f"rollout.max_turns={t},search.topk={k},seed={s}",
                    max_turns=t,
                    topk=k,
                    seed=s,
                    em=[0.0, final / 2, final],
                )
    return root
