"""The multi-turn search loop shared by both trainers (Search-R1 semantics, token-in/token-out).

Per sample: up to ``max_turns`` search-capable generations, then (``final_turn``) one generation
without search, as ``max_turns`` means in the original ``LLMGenerationManager.run_llm_loop``. Each
generation continues from exactly the ids so far (prompt + response); observations and corrections
are appended as masked tokens; nothing generated after the turn's first closing tag is kept.
"""

from __future__ import annotations

import asyncio
import time
from typing import Optional, Sequence

from searchr1.config.schema import RolloutConfig
from searchr1.rollout.actions import STOP_TAGS, Action, parse_action
from searchr1.engines.base import Engine, EngineOutput, SamplingParams, Tokenizer
from searchr1.rollout.tokens import SegmentEncoder, keep_through_stop_tag
from searchr1.rollout.trajectory import Trajectory
from searchr1.search.base import SearchBackend
from searchr1.search.render import render_observation


async def run_trajectory(
    prompt_ids: Sequence[int],
    *,
    engine: Engine,
    search: SearchBackend,
    tokenizer: Tokenizer,
    rollout_cfg: RolloutConfig,
    topk: int,
    failure_text: str,
    encoder: Optional[SegmentEncoder] = None,
) -> Trajectory:
    """Roll out one sample. Engine aborts and budget overruns end it early but never lose it."""
    cfg = rollout_cfg
    encoder = encoder or SegmentEncoder(tokenizer)
    traj = Trajectory(prompt_ids=list(prompt_ids))
    generations = cfg.max_turns + (1 if cfg.final_turn else 0)
    for turn in range(generations):
        budget = cfg.max_response_len - len(traj.response_ids)
        if budget <= 0:
            traj.status = "truncated"
            break
        last = turn == generations - 1
        output = await engine.generate(traj.prompt_ids + traj.response_ids, _params(cfg, budget))
        action = _take_generation(traj, output, tokenizer, budget, cfg, correction_follows=not last)
        if traj.status != "completed" or action.kind == "answer":
            break
        if last:
            break  # the last generation gets no retrieval and no correction (Search-R1's final turn)
        if action.kind == "search":
            await _search(traj, action.content, search, encoder, topk, failure_text, cfg)
        else:
            _insert(traj, encoder.encode(cfg.invalid_action_text, _left_context(traj)), cfg)
    traj.response_text = tokenizer.decode(traj.response_ids, skip_special_tokens=False)
    return traj


async def run_batch(
    prompts: Sequence[Sequence[int]],
    *,
    engine: Engine,
    search: SearchBackend,
    tokenizer: Tokenizer,
    rollout_cfg: RolloutConfig,
    topk: int,
    failure_text: str,
) -> list[Trajectory]:
    """Roll out every prompt concurrently; results keep the order of ``prompts``."""
    encoder = SegmentEncoder(tokenizer)  # shared: its context cache serves the whole batch
    rollouts = (
        run_trajectory(
            prompt,
            engine=engine,
            search=search,
            tokenizer=tokenizer,
            rollout_cfg=rollout_cfg,
            topk=topk,
            failure_text=failure_text,
            encoder=encoder,
        )
        for prompt in prompts
    )
    return list(await asyncio.gather(*rollouts))


def _params(cfg: RolloutConfig, budget: int) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=min(cfg.max_turn_tokens, budget),
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        stop=STOP_TAGS if cfg.stop_at_tags else (),
    )


def _take_generation(
    traj: Trajectory,
    output: EngineOutput,
    tokenizer: Tokenizer,
    budget: int,
    cfg: RolloutConfig,
    *,
    correction_follows: bool,
) -> Action:
    """Append one generation (cut after its first closing tag) and return its action."""
    traj.turns += 1
    # Guard against engines that overshoot max_new_tokens: the budget is a hard limit.
    ids = output.token_ids[: min(cfg.max_turn_tokens, budget)]
    kept, text = keep_through_stop_tag(tokenizer, ids)
    action = parse_action(text)
    if action.kind == "invalid" and correction_follows and _ends_with_eos(ids[:kept], output, tokenizer):
        # An end-of-turn token would precede our correction; the original drops it as well.
        kept -= 1
    traj.append_generated(ids[:kept], output.logprobs[:kept])
    if action.kind == "invalid":
        traj.invalid_actions += 1
    if action.kind == "answer":
        traj.final_answer = action.content
    if output.finish_reason == "abort":
        traj.status = "aborted"
    elif action.kind == "invalid" and len(traj.response_ids) >= cfg.max_response_len:
        traj.status = "truncated"  # the budget ran out before the turn finished an action
    return action


def _ends_with_eos(ids: Sequence[int], output: EngineOutput, tokenizer: Tokenizer) -> bool:
    eos = tokenizer.eos_token_id
    return output.finish_reason == "stop" and eos is not None and len(ids) > 0 and ids[-1] == eos


async def _search(
    traj: Trajectory,
    query: str,
    search: SearchBackend,
    encoder: SegmentEncoder,
    topk: int,
    failure_text: str,
    cfg: RolloutConfig,
) -> None:
    started = time.perf_counter()
    result = await search.search(query, topk)
    traj.search_seconds += time.perf_counter() - started
    traj.search_calls += 1
    traj.queries.append(query)
    traj.search_failures += int(result.failed)
    ids = encoder.encode(render_observation(result, failure_text), _left_context(traj))
    ids = ids[: cfg.max_obs_tokens]  # Search-R1 cuts observations at max_obs_length tokens
    traj.observation_tokens += _insert(traj, ids, cfg)


def _left_context(traj: Trajectory) -> list[int]:
    return traj.response_ids or traj.prompt_ids


def _insert(traj: Trajectory, ids: list[int], cfg: RolloutConfig) -> int:
    """Append masked tokens within the response budget; returns how many were appended."""
    room = cfg.max_response_len - len(traj.response_ids)
    if len(ids) > room:
        ids = ids[: max(room, 0)]
        traj.status = "truncated"
    traj.append_inserted(ids)
    return len(ids)
