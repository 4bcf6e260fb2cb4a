"""``searchr1-sft``: a warm start for RL, fine-tuned on multi-turn search trajectories.

Configured like a training run (same config tree and overrides) plus ``sft.*``:

    searchr1-sft                                               # oracle demonstrations on the synthetic data
    searchr1-sft sft.source=samples sft.samples_paths=[outputs/.../rollouts.jsonl]   # rewarded samples
    python -m searchr1 trainer.init_from=<run dir>/warm_start  # RL from the warm start

It writes ``<run dir>/warm_start`` (or ``sft.output_dir``): a PEFT LoRA adapter (a full Hugging Face
model with ``trainer.lora_rank=0``) and ``provenance.json`` saying how it was made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import hydra
from omegaconf import DictConfig

from searchr1.config.checks import ConfigError
from searchr1.config.schema import LocalTrainerConfig, SearchR1Config
from searchr1.data.synthetic import Question, generate
from searchr1.entry import CONFIG_MODULE, CONFIG_NAME, VERSION_BASE, run_checked, start
from searchr1.rollout.trajectory import Trajectory
from searchr1.run import RunContext, save_resolved_config
from searchr1.tools.calculator import TOOL as CALCULATOR

log = logging.getLogger("searchr1.sft")

WARM_START_DIR = "warm_start"


def main() -> None:
    start("searchr1-sft", _hydra_main, run_sft)


@hydra.main(version_base=VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME)
def _hydra_main(cfg: DictConfig) -> None:
    run_checked(cfg, run_sft, program="searchr1-sft")


def run_sft(ctx: RunContext) -> Path:
    """Build the trajectories, fine-tune, write the warm start; returns its directory."""
    from searchr1.data import ensure_data

    cfg = ctx.cfg
    save_resolved_config(ctx)
    ensure_data(cfg.data)
    trajectories, provenance = _trajectories(ctx)
    if not trajectories:
        raise ConfigError(f"sft.source={cfg.sft.source} gave no trajectories to train on")
    out = Path(cfg.sft.output_dir) if cfg.sft.output_dir else ctx.run_dir / WARM_START_DIR
    return _fine_tune(ctx, trajectories, out, provenance)


def _trajectories(ctx: RunContext) -> tuple[list[Trajectory], dict[str, Any]]:
    cfg = ctx.cfg
    if cfg.sft.source == "samples":
        from searchr1.sft.samples import rewarded_trajectories

        kept = rewarded_trajectories(cfg.sft.samples_paths, cfg.sft.min_reward)
        log.info(
            "kept %d samples with exact match >= %s (sft.min_reward) from %s",
            len(kept),
            cfg.sft.min_reward,
            ", ".join(cfg.sft.samples_paths),
        )
        return kept, {"samples_paths": list(cfg.sft.samples_paths), "kept": len(kept)}
    questions = demonstration_questions(cfg)
    demos = _demonstrations(ctx, questions)
    hops = {h: sum(len(q.hop_queries) == h for q in demos.questions) for h in cfg.sft.hops}
    log.info(
        "built %d demonstrations (%s by hops), dropped %d whose retrieval missed a hop",
        len(demos.trajectories),
        hops,
        demos.dropped,
    )
    return demos.trajectories, {"demonstrations": len(demos.trajectories), "by_hops": hops, "dropped": demos.dropped}


def demonstration_questions(cfg: SearchR1Config) -> list[Question]:
    """The train split's first ``sft.num_examples`` questions with ``sft.hops`` hops (test questions never)."""
    if cfg.data.name != "synthetic":
        raise ConfigError(
            f"sft.source=demonstrations needs data=synthetic (data.name={cfg.data.name}); "
            "use sft.source=samples with rewarded rollouts of your own data"
        )
    book = generate(cfg.data.seed, cfg.data.num_entities, cfg.data.questions)
    questions = [q for q in book.train if len(q.hop_queries) in cfg.sft.hops][: cfg.sft.num_examples]
    if CALCULATOR.name not in cfg.tools and any(q.calculation for q in questions):
        raise ConfigError(
            f"data.questions={cfg.data.questions}: the demonstrations call the calculator, which tools={cfg.tools} "
            "leaves out; add it (tools=[search,calculator])"
        )
    return questions


def _demonstrations(ctx: RunContext, questions: list[Question]):
    from searchr1.models.loading import load_policy_tokenizer
    from searchr1.retriever.embedded import run_retriever
    from searchr1.sft.demonstrations import build_demonstrations
    from searchr1.tools.base import ToolContext
    from searchr1.tools.registry import selected_nodes
    from searchr1.tools.toolbox import open_toolbox

    cfg = ctx.cfg
    tokenizer = load_policy_tokenizer(cfg.model)

    async def build(urls: list[str] | None):
        async with aiohttp.ClientSession() as session:
            context = ToolContext(session, run_dir=ctx.run_dir, backend=cfg.backend, retriever_urls=urls)
            tools = open_toolbox(
                selected_nodes(cfg), context, action_format=cfg.rollout.action_format, tokenizer=tokenizer
            )
            try:
                return await build_demonstrations(questions, tools=tools, tokenizer=tokenizer, cfg=cfg)
            finally:
                await tools.close()

    with run_retriever(cfg, ctx.run_dir) as urls:
        return asyncio.run(build(urls))


def _fine_tune(ctx: RunContext, trajectories: list[Trajectory], out: Path, provenance: dict[str, Any]) -> Path:
    import torch

    from searchr1.models.loading import load_policy
    from searchr1.models.policy_writer import save_warm_start
    from searchr1.tracking import Tracker
    from searchr1.trainers.local.heap import map_large_allocations
    from searchr1.trainers.local.sft import sft_step

    cfg, sft, tcfg = ctx.cfg, ctx.cfg.sft, LocalTrainerConfig.of(ctx.cfg)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    map_large_allocations()  # as the RL trainer: freed activations go back to the OS
    policy = load_policy(
        cfg.model, tcfg.init_from, tcfg.lora_rank, gradient_checkpointing=tcfg.gradient_checkpointing
    ).train()  # checkpointing acts in train mode
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=sft.lr)
    batches = _batches(trajectories, sft.batch_size, random.Random(cfg.seed))
    made = _provenance(ctx, provenance)
    with Tracker(ctx, total_steps=sft.steps) as tracker:
        for step in range(1, sft.steps + 1):
            started = time.perf_counter()
            metrics = sft_step(
                policy,
                optimizer,
                next(batches),
                micro_batch_size=tcfg.micro_batch_size,
                grad_clip=tcfg.grad_clip,
                logprob_chunk_tokens=tcfg.logprob_chunk_tokens,
            )
            tracker.log({**metrics, "perf/step_seconds": time.perf_counter() - started}, step)
            if sft.save_every and step % sft.save_every == 0 and step < sft.steps:
                # An earlier, partial warm start: what the same command with sft.steps=<step> writes.
                save_warm_start(out / f"step_{step:04d}", policy, {**made, "step": step, "final": tracker.last})
    path = save_warm_start(out, policy, {**made, "step": sft.steps, "final": tracker.last})
    log.info("warm start written to %s; start RL from it with trainer.init_from=%s", path, path)
    return path


def _provenance(ctx: RunContext, trajectories: dict[str, Any]) -> dict[str, Any]:
    """How a warm start was made: enough to make it again with the same bytes of data."""
    cfg = ctx.cfg
    return {
        "command": " ".join(["searchr1-sft", *sys.argv[1:]]),
        "overrides": ctx.sweep_point,
        "seed": cfg.seed,
        "model": dataclasses.asdict(cfg.model),
        "data": {
            "name": cfg.data.name,
            "seed": cfg.data.seed,
            "num_entities": cfg.data.num_entities,
            "prompt_style": cfg.data.prompt_style,
            "questions": cfg.data.questions,
        },
        "tools": list(cfg.tools),
        "rollout": {"max_turn_tokens": cfg.rollout.max_turn_tokens, "topk": cfg.search.topk},
        "sft": dataclasses.asdict(cfg.sft),
        "lora_rank": LocalTrainerConfig.of(cfg).lora_rank,
        "trajectories": trajectories,
    }


def _batches(trajectories: list[Trajectory], size: int, rng: random.Random):
    """Endless shuffled passes over the trajectories, ``size`` at a time."""
    order: list[int] = []
    while True:
        if len(order) < size:
            fresh = list(range(len(trajectories)))
            rng.shuffle(fresh)
            order += fresh
        yield [trajectories[i] for i in order[:size]]
        del order[:size]
