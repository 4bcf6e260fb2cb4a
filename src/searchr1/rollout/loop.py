"""The multi-turn tool loop shared by both trainers (Search-R1 semantics, token-in/token-out).

Per sample: up to ``max_turns`` tool-capable generations (a call of any configured tool counts), then
(``final_turn``) one generation without tools, as ``max_turns`` means in the original
``LLMGenerationManager.run_llm_loop``. Each generation continues from exactly the ids so far (prompt +
response); observations and corrections are appended as masked tokens; nothing generated after the turn's
first closing tag is kept.
"""

from __future__ import annotations

import asyncio
from typing import Optional, Sequence

from searchr1.config.schema import RolloutConfig
from searchr1.engines.base import Engine, EngineOutput, SamplingParams, Tokenizer
from searchr1.rollout.tokens import SegmentEncoder, keep_through_stop_tag
from searchr1.rollout.trajectory import Trajectory
from searchr1.tools.grammar import ANSWER, INVALID, MALFORMED, Action, Grammar
from searchr1.tools.toolbox import Toolbox


async def run_trajectory(
    prompt_ids: Sequence[int],
    *,
    engine: Engine,
    tools: Toolbox,
    tokenizer: Tokenizer,
    rollout_cfg: RolloutConfig,
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
        params = _params(cfg, budget, tools.grammar)
        output = await engine.generate(traj.prompt_ids + traj.response_ids, params)
        action = _take_generation(traj, output, tokenizer, budget, cfg, tools.grammar, correction_follows=not last)
        if traj.status != "completed" or action.kind == ANSWER:
            break
        if last:
            break  # the last generation gets no tool call and no correction (Search-R1's final turn)
        if action.kind == INVALID:
            correction = tools.invalid_action_text(cfg.invalid_action_text)
            _insert(traj, encoder.encode(correction, _left_context(traj)), cfg)
        elif action.kind == MALFORMED:  # a call that cannot run: its error is the observation
            _observe(traj, tools.error_observation(action.error or "malformed call"), encoder, cfg)
        else:
            await _call_tool(traj, action, tools, encoder, cfg)
    traj.response_text = tokenizer.decode(traj.response_ids, skip_special_tokens=False)
    return traj


async def run_batch(
    prompts: Sequence[Sequence[int]],
    *,
    engine: Engine,
    tools: Toolbox,
    tokenizer: Tokenizer,
    rollout_cfg: RolloutConfig,
) -> list[Trajectory]:
    """Roll out every prompt concurrently; results keep the order of ``prompts``."""
    encoder = SegmentEncoder(tokenizer)  # shared: its context cache serves the whole batch
    rollouts = (
        run_trajectory(
            prompt, engine=engine, tools=tools, tokenizer=tokenizer, rollout_cfg=rollout_cfg, encoder=encoder
        )
        for prompt in prompts
    )
    return list(await asyncio.gather(*rollouts))


def _params(cfg: RolloutConfig, budget: int, grammar: Grammar) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=min(cfg.max_turn_tokens, budget),
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        stop=grammar.stop_tags if cfg.stop_at_tags else (),
    )


def _take_generation(
    traj: Trajectory,
    output: EngineOutput,
    tokenizer: Tokenizer,
    budget: int,
    cfg: RolloutConfig,
    grammar: Grammar,
    *,
    correction_follows: bool,
) -> Action:
    """Append one generation (cut after its first closing tag) and return its action."""
    traj.turns += 1
    # Guard against engines that overshoot max_new_tokens: the budget is a hard limit.
    ids = output.token_ids[: min(cfg.max_turn_tokens, budget)]
    kept, text = keep_through_stop_tag(tokenizer, ids, grammar)
    action = grammar.parse(text)
    if action.kind == INVALID and correction_follows and _ends_with_eos(ids[:kept], output, tokenizer):
        # An end-of-turn token would precede our correction; the original drops it as well.
        kept -= 1
    traj.append_generated(ids[:kept], output.logprobs[:kept])
    if action.kind in (INVALID, MALFORMED):
        traj.invalid_actions += 1
    if action.kind == ANSWER:
        traj.final_answer = action.content
    if output.finish_reason == "abort":
        traj.status = "aborted"
    elif action.kind == INVALID and len(traj.response_ids) >= cfg.max_response_len:
        traj.status = "truncated"  # the budget ran out before the turn finished an action
    return action


def _ends_with_eos(ids: Sequence[int], output: EngineOutput, tokenizer: Tokenizer) -> bool:
    eos = tokenizer.eos_token_id
    return output.finish_reason == "stop" and eos is not None and len(ids) > 0 and ids[-1] == eos


async def _call_tool(
    traj: Trajectory, action: Action, tools: Toolbox, encoder: SegmentEncoder, cfg: RolloutConfig
) -> None:
    observation, call = await tools.call(action.kind, action.content)
    traj.tool_calls.append(call)
    _observe(traj, observation, encoder, cfg)


def _observe(traj: Trajectory, observation: str, encoder: SegmentEncoder, cfg: RolloutConfig) -> None:
    ids = encoder.encode(observation, _left_context(traj))
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
