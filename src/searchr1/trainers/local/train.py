"""The embedded trainer's loop: sample prompts, roll out with search, score, GRPO update, log, checkpoint.

Everything runs in this process except the retriever (a child server on 127.0.0.1): the policy
model, its in-process engine (sharing the weights, or a lower-precision copy synced after every
update) and, when KL is on, a frozen reference (the adapter-free model under LoRA).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional, Sequence

import numpy as np
import torch

from searchr1.config.schema import LocalTrainerConfig, RewardConfig, SearchR1Config
from searchr1.data import ensure_data
from searchr1.data.dataset import QAExample, load_split, of_sources
from searchr1.eval import evaluate
from searchr1.health import contiguous_groups, rollout_health
from searchr1.metrics import rollout_metrics
from searchr1.metrics_file import drop_steps_after, read_metrics
from searchr1.paths import RunDir
from searchr1.retriever.embedded import run_retriever
from searchr1.reward import GoldAnswers, RewardBreakdown, reads_prompt, score_group
from searchr1.rollout.tokens import policy_prompt_ids
from searchr1.rollout.loop import run_batch
from searchr1.rollout.trajectory import Trajectory
from searchr1.run import RunContext
from searchr1.tracking import Tracker
from searchr1.trainers.local.checkpoint import load_latest, restore, save_checkpoint
from searchr1.engines.local import LocalEngine
from searchr1.trainers.local.grpo import Group, group_advantages, grpo_update
from searchr1.trainers.local.heap import map_large_allocations, trim_heap
from searchr1.trainers.local.interrupt import Interrupted, SignalStop
from searchr1.trainers.local.health_guard import HealthGuard
from searchr1.models.loading import check_warm_start, load_policy, load_policy_tokenizer, torch_dtype
from searchr1.models.checkpoints import saved_checkpoints
from searchr1.models.lora import sync_trainable
from searchr1.trainers.local.sampler import PromptSampler
from searchr1.models.policy_writer import save_warm_start
from searchr1.tools.base import ToolContext
from searchr1.tools.registry import selected_nodes
from searchr1.tools.toolbox import Toolbox, open_toolbox

log = logging.getLogger(__name__)


@dataclass
class Models:
    policy: Any
    engine_model: Any
    """The policy itself in float32, else a lower-precision copy (trainer.engine_dtype)."""
    reference: Optional[Callable[[], ContextManager[Any]]]
    """Enters a context yielding the frozen reference model; None when grpo.kl_loss_coef=0."""


@dataclass
class Trainer:
    """What one run holds between steps."""

    ctx: RunContext
    examples: list[QAExample]
    eval_examples: list[QAExample]
    tokenizer: Any
    models: Models
    optimizer: torch.optim.Optimizer
    sampler: PromptSampler
    checkpoint_dir: Path


def train(ctx: RunContext) -> None:
    """Train; SIGINT (Ctrl-C) and SIGTERM stop it within seconds, in one line, exit status 128 + signal."""
    with SignalStop() as stop:
        try:
            _train(ctx, stop)
        except Interrupted as exc:
            log.warning("stopped by %s: %s", exc, _resume_hint(ctx))
            raise SystemExit(exc.exit_code) from None


def _resume_hint(ctx: RunContext) -> str:
    directory = checkpoint_dir(ctx)
    saved = saved_checkpoints(directory) if directory.is_dir() else {}
    if not saved:
        return "no checkpoint was written yet, so a rerun starts from step 0"
    return (
        f"the newest checkpoint is step {max(saved)} in {directory}; continue with "
        f"trainer.resume=true hydra.run.dir={ctx.run_dir}"
    )


def checkpoint_dir(ctx: RunContext) -> Path:
    return RunDir(ctx.run_dir).checkpoint_dir(LocalTrainerConfig.of(ctx.cfg).checkpoint_dir)


def _train(ctx: RunContext, stop: SignalStop) -> None:
    cfg, tcfg = ctx.cfg, LocalTrainerConfig.of(ctx.cfg)
    _seed_everything(cfg.seed)
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    map_large_allocations()  # freed activations go back to the OS instead of piling up in RSS
    trainer = _build(ctx)
    start = _resume(trainer) if tcfg.resume else 0
    drop_steps_after(ctx.run_dir / RunDir.ROLLOUTS, start)
    tracker = Tracker(ctx, total_steps=tcfg.steps, start_step=start)
    try:
        if start >= tcfg.steps:
            log.info("checkpoint is at step %d >= trainer.steps=%d: nothing to train", start, tcfg.steps)
            return
        with run_retriever(cfg, ctx.run_dir) as urls:
            asyncio.run(_train_steps(trainer, tracker, start, urls, stop))
        _save_policy(trainer)
    finally:
        tracker.finish()


def _save_policy(trainer: Trainer) -> None:
    """The trained policy in the warm-start format: ``searchr1-eval eval.checkpoint=<dir>`` scores it,
    ``trainer.init_from=<dir>`` continues from it (checkpoints also hold optimizer and sampler state)."""
    ctx = trainer.ctx
    path = save_warm_start(
        ctx.run_dir / RunDir.POLICY,
        trainer.models.policy,
        {
            "run_name": ctx.run_name,
            "steps": LocalTrainerConfig.of(ctx.cfg).steps,
            "init_from": LocalTrainerConfig.of(ctx.cfg).init_from,
            "overrides": ctx.sweep_point,
            "model": ctx.cfg.model.hf_checkpoint,
            "seed": ctx.cfg.seed,
        },
    )
    log.info("trained policy written to %s (score it: searchr1-eval eval.checkpoint=%s)", path, path)


def _build(ctx: RunContext) -> Trainer:
    cfg, tcfg = ctx.cfg, LocalTrainerConfig.of(ctx.cfg)
    ensure_data(cfg.data)
    examples = load_split(cfg.data.train_path, cfg.data.prompt_style)
    examples = of_sources(examples, cfg.data.train_sources, cfg.data.train_path)
    eval_examples = []
    if tcfg.eval_every:
        eval_examples = load_split(cfg.data.test_path, cfg.data.prompt_style)
    started = time.perf_counter()
    tokenizer = load_policy_tokenizer(cfg.model)
    models = build_models(cfg)
    log.info(
        "loaded %s in %.1fs (trainer.lora_rank=%d, trainer.engine_dtype=%s)",
        cfg.model.name,
        time.perf_counter() - started,
        tcfg.lora_rank,
        tcfg.engine_dtype,
    )
    trainable = [p for p in models.policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    sampler = PromptSampler(
        len(examples),
        tcfg.prompts_per_step,
        cfg.seed,
        cfg.data.shuffle,
        sources=[e.data_source for e in examples],
        balance=cfg.data.balance_sources,
    )
    return Trainer(ctx, examples, eval_examples, tokenizer, models, optimizer, sampler, checkpoint_dir(ctx))


def build_models(cfg: SearchR1Config) -> Models:
    tcfg = LocalTrainerConfig.of(cfg)
    policy = load_policy(cfg.model, tcfg.init_from, tcfg.lora_rank, gradient_checkpointing=tcfg.gradient_checkpointing)
    policy.train()
    reference = None
    if cfg.grpo.kl_loss_coef > 0:
        # The reference is the starting policy: switching the adapters off gives it only when they start at 0.
        continues_adapter = bool(
            tcfg.init_from
            and tcfg.lora_rank > 0
            and check_warm_start(tcfg.init_from, tcfg.lora_rank, "trainer.init_from").kind == "adapter"
        )
        if tcfg.lora_rank > 0 and not continues_adapter:
            reference = adapters_off_reference(policy)
        else:
            frozen = copy.deepcopy(policy)
            frozen = frozen.merge_and_unload() if continues_adapter else frozen
            reference = functools.partial(contextlib.nullcontext, frozen.eval().requires_grad_(False))
    engine_model = policy
    if tcfg.engine_dtype != "float32":
        engine_model = copy.deepcopy(policy).to(torch_dtype(tcfg.engine_dtype)).eval().requires_grad_(False)
    return Models(policy=policy, engine_model=engine_model, reference=reference)


def adapters_off_reference(policy: Any) -> Callable[[], ContextManager[Any]]:
    """Under LoRA the reference is the same network with its adapters switched off."""

    @contextlib.contextmanager
    def adapters_off() -> Iterator[Any]:
        with policy.disable_adapter():
            yield policy

    return adapters_off


def _resume(trainer: Trainer) -> int:
    state = load_latest(trainer.checkpoint_dir)
    if state is None:
        log.warning("trainer.resume=true but %s holds no checkpoint: starting from step 0", trainer.checkpoint_dir)
        return 0
    restore(state, trainer.models.policy, trainer.optimizer)
    trainer.sampler.restore(state["sampler"])
    _sync_engine(trainer.models)
    log.info(
        "resumed from %s at step %d (data epoch %d, position %d)",
        trainer.checkpoint_dir,
        state["step"],
        trainer.sampler.epoch,
        trainer.sampler.position,
    )
    return int(state["step"])


async def _train_steps(
    trainer: Trainer, tracker: Tracker, start: int, urls: Optional[list[str]], stop: SignalStop
) -> None:
    import aiohttp

    cfg, tcfg = trainer.ctx.cfg, LocalTrainerConfig.of(trainer.ctx.cfg)
    async with aiohttp.ClientSession() as session:
        context = ToolContext(session, run_dir=trainer.ctx.run_dir, backend=cfg.backend, retriever_urls=urls)
        tools = open_toolbox(
            selected_nodes(cfg), context, action_format=cfg.rollout.action_format, tokenizer=trainer.tokenizer
        )
        engine = LocalEngine(
            trainer.models.engine_model, trainer.tokenizer, max_batch=tcfg.engine_max_batch, seed=cfg.seed
        )
        try:
            if tcfg.eval_every and start == 0:
                # The starting policy's score: the baseline every later eval is read against.
                tracker.log(await _evaluate(trainer, engine, tools), 0)
            guard = HealthGuard(
                cfg.health,
                trainer.models.policy,
                trainer.optimizer,
                alert=cfg.logger.mode == "online",
                start_step=start,
            )
            guard.monitor.remember_baselines(read_metrics(trainer.ctx.run_dir))  # a resumed run's first steps
            for step in range(start + 1, tcfg.steps + 1):
                metrics = await _train_step(trainer, engine, tools, step)
                if tcfg.eval_every and step % tcfg.eval_every == 0:
                    metrics.update(await _evaluate(trainer, engine, tools))
                verdict = guard.review(step, metrics)  # health.*: may restore earlier weights
                if verdict == "rollback":
                    _sync_engine(trainer.models)
                stopping = verdict == "stop"
                with stop.committing():  # Ctrl-C here lets the step's line and checkpoint finish first
                    # Log before saving: a kill in between redoes the step, and resuming drops its lines.
                    tracker.log(metrics, step)
                    if stopping or tcfg.checkpoint_every and (step % tcfg.checkpoint_every == 0 or step == tcfg.steps):
                        save_checkpoint(
                            trainer.checkpoint_dir,
                            step,
                            trainer.models.policy,
                            trainer.optimizer,
                            trainer.sampler.state(),
                            keep=tcfg.checkpoint_keep,
                        )
                if stopping:
                    log.warning(
                        "health: stopping at step %d (a health.* rule with action=stop fired); checkpoint in %s",
                        step,
                        trainer.checkpoint_dir,
                    )
                    break
        finally:
            await engine.close()
            await tools.close()


async def _train_step(trainer: Trainer, engine: LocalEngine, tools: Toolbox, step: int) -> dict[str, float]:
    cfg, tcfg = trainer.ctx.cfg, LocalTrainerConfig.of(trainer.ctx.cfg)
    n = cfg.rollout.n_samples_per_prompt
    started = time.perf_counter()
    batch = [trainer.examples[i] for i in trainer.sampler.next_batch()]
    prompts = [policy_prompt_ids(trainer.tokenizer, tools, e.prompt_messages, e.question) for e in batch]
    engine.reseed(cfg.seed * 1_000_003 + step)  # each step's sampling is reproducible after a resume
    engine.clear_prefix_cache()  # cached KV was computed with last step's weights
    engine.track(f"step {step} rollout", samples=len(prompts) * n)  # a progress line every few seconds
    generated_before = engine.stats.generated_tokens
    trajectories = await run_batch(
        [p for p in prompts for _ in range(n)],
        engine=engine,
        tools=tools,
        tokenizer=trainer.tokenizer,
        rollout_cfg=cfg.rollout,
    )
    # The cached KV is stale once the update runs: free it, and the rollout's heap, before the update's peak.
    engine.clear_prefix_cache()
    trim_heap()
    rollout_s = time.perf_counter() - started
    golds = [example.golden_answers for example in batch for _ in range(n)]
    prompt_texts = None
    if reads_prompt(cfg.reward):
        decoded = [trainer.tokenizer.decode(ids, skip_special_tokens=False) for ids in prompts]
        prompt_texts = [text for text in decoded for _ in range(n)]
    rewards = score_trajectories(trajectories, golds, cfg.reward, prompt_texts)
    metrics = rollout_metrics(trajectories, rewards, golds, tools.stats_and_reset(), tools=list(tools.tools))
    metrics.update(rollout_health(trajectories, rewards, contiguous_groups([r.total for r in rewards], n)))
    _write_rollouts(trainer.ctx.run_dir, step, batch, n, trajectories, rewards)

    update_started = time.perf_counter()
    advantages = group_advantages([r.total for r in rewards], n)
    groups = [
        _group(prompts[g], trajectories[g * n : (g + 1) * n], advantages[g * n : (g + 1) * n])
        for g in range(len(batch))
    ]
    metrics.update(
        grpo_update(
            trainer.models.policy,
            trainer.models.reference,
            groups,
            trainer.optimizer,
            tcfg,
            cfg.grpo,
            cfg.tis,
            temperature=cfg.rollout.temperature,
            pad_token_id=engine.pad_token_id,
            label=f"step {step} update",
        )
    )
    _sync_engine(trainer.models)
    update_s = time.perf_counter() - update_started
    train_tokens = sum(len(t.prompt_ids) + len(t.response_ids) for t in trajectories)
    metrics.update(
        {
            "perf/rollout_seconds": rollout_s,
            "perf/update_seconds": update_s,
            "perf/step_seconds": time.perf_counter() - started,
            "perf/rollout_tokens_per_s": (engine.stats.generated_tokens - generated_before) / max(rollout_s, 1e-9),
            "perf/train_tokens_per_s": train_tokens / max(update_s, 1e-9),
            "train/data_epoch": float(trainer.sampler.epoch),
        }
    )
    return metrics


async def _evaluate(trainer: Trainer, engine: LocalEngine, tools: Toolbox) -> dict[str, float]:
    """The shared periodic eval (eval/exact_match, per data source, F1, ...) on trainer.eval_prompts prompts."""
    engine.clear_prefix_cache()  # the cached KV predates this step's update
    metrics = await evaluate(
        trainer.eval_examples,
        engine=engine,
        tools=tools,
        tokenizer=trainer.tokenizer,
        cfg=trainer.ctx.cfg,
        max_prompts=LocalTrainerConfig.of(trainer.ctx.cfg).eval_prompts,
    )
    tools.stats_and_reset()  # eval's tool calls stay out of the next step's search/* metrics
    return metrics


def _group(prompt: list[int], trajectories: Sequence[Trajectory], advantages: torch.Tensor) -> Group:
    # An empty response (aborted before its first token) trains nothing: one masked pad token.
    responses = [t.response_ids or [0] for t in trajectories]
    masks = [t.loss_mask if t.response_ids else [0] for t in trajectories]
    logprobs = [t.rollout_logprobs if t.response_ids else [0.0] for t in trajectories]
    return Group(
        prompt_ids=prompt, responses=responses, loss_masks=masks, rollout_logprobs=logprobs, advantages=advantages
    )


def _sync_engine(models: Models) -> None:
    if models.engine_model is not models.policy:
        sync_trainable(models.policy, models.engine_model)


def _write_rollouts(
    run_dir: Path,
    step: int,
    batch: Sequence[QAExample],
    n: int,
    trajectories: Sequence[Trajectory],
    rewards: Sequence[RewardBreakdown],
) -> None:
    """Every sample of the step, readable: where to look first when rewards do not move."""
    with (run_dir / RunDir.ROLLOUTS).open("a", encoding="utf-8") as out:
        for i, (traj, reward) in enumerate(zip(trajectories, rewards)):
            example = batch[i // n]
            out.write(
                json.dumps(
                    {
                        "step": step,
                        "index": example.index,
                        "question": example.question,
                        "golden_answers": list(example.golden_answers),
                        "response": traj.response_text,
                        "reward": reward.total,
                        "exact_match": reward.exact_match,
                        "format": reward.format,
                        "status": traj.status,
                        "turns": traj.turns,
                        "search_calls": traj.search_calls,
                        **traj.token_record(),
                    }
                )
                + "\n"
            )


def score_trajectories(
    trajectories: Sequence[Trajectory],
    golds: Sequence[GoldAnswers],
    reward_cfg: RewardConfig,
    prompt_texts: Optional[Sequence[str]] = None,
) -> list[RewardBreakdown]:
    """The embedded trainer's rewards: the shared reward over each response and its tool-call count (the
    Miles reward hook reads the same count from Sample.metadata)."""
    responses = [t.response_text for t in trajectories]
    calls = [len(t.tool_calls) for t in trajectories]
    return score_group(responses, golds, reward_cfg, prompt_texts=prompt_texts, tool_calls=calls)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
