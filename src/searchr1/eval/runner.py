"""Roll out test prompts without training and score them; the periodic hook is ``evaluate``."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Sequence

from searchr1.config.schema import SearchR1Config
from searchr1.data.dataset import QAExample
from searchr1.eval.scoring import SampleScore, score_sample
from searchr1.eval.table import EvalTable, build_table, flat_metrics
from searchr1.metrics import tool_metrics
from searchr1.reward import reads_prompt
from searchr1.rollout.tokens import policy_prompt_ids
from searchr1.engines.base import Engine, Tokenizer
from searchr1.rollout.loop import run_batch
from searchr1.rollout.trajectory import Trajectory
from searchr1.tools.toolbox import Toolbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    table: EvalTable
    scores: list[SampleScore]
    trajectories: list[Trajectory]
    """Each sample's trajectory, in the order of ``scores``."""
    tools: tuple[str, ...] = ()
    """The policy's tools: each gets ``<prefix>/tool/<name>/*`` (calls per sample, failure rate, latency),
    also when no sample called it."""

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        if not self.scores:
            return {}
        calls = tool_metrics(self.trajectories, self.tools)
        return {**flat_metrics(self.table, self.scores, prefix), **{f"{prefix}/{k}": v for k, v in calls.items()}}


def select_examples(examples: Sequence[QAExample], max_prompts: int | None) -> list[QAExample]:
    """At most ``max_prompts`` examples, taken round-robin over data sources in file order.

    A merged test file lists its datasets one after another; the first N rows would all be NQ.
    """
    if max_prompts is None or max_prompts >= len(examples):
        return list(examples)
    queues: dict[str, list[QAExample]] = {}
    for example in examples:
        queues.setdefault(example.data_source, []).append(example)
    picked: list[QAExample] = []
    depth = 0
    while len(picked) < max_prompts:
        for queue in queues.values():
            if depth < len(queue) and len(picked) < max_prompts:
                picked.append(queue[depth])
        depth += 1
    return picked


def eval_rollout_config(cfg: SearchR1Config):
    """The training rollout settings with eval's sampling: greedy unless eval.temperature > 0."""
    return dataclasses.replace(cfg.rollout, temperature=cfg.eval.temperature, top_p=1.0)


async def evaluate_examples(
    examples: Sequence[QAExample],
    *,
    engine: Engine,
    tools: Toolbox,
    tokenizer: Tokenizer,
    cfg: SearchR1Config,
    chunk_size: int = 256,
) -> EvalResult:
    """Roll out every example ``cfg.eval.pass_k`` times and score each sample.

    Samples run ``chunk_size`` at a time: a full test set (51k prompts) at once would queue every
    request in memory at the engine and the search backend.
    """
    k = cfg.eval.pass_k
    prompts = [policy_prompt_ids(tokenizer, tools, e.prompt_messages, e.question) for e in examples]
    samples = [ids for ids in prompts for _ in range(k)]
    rollout_cfg = eval_rollout_config(cfg)
    trajectories = []
    for start in range(0, len(samples), chunk_size):
        trajectories += await run_batch(
            samples[start : start + chunk_size],
            engine=engine,
            tools=tools,
            tokenizer=tokenizer,
            rollout_cfg=rollout_cfg,
        )
        log.info("eval: %d/%d samples rolled out", len(trajectories), len(samples))
    scores = []
    for i, traj in enumerate(trajectories):
        example = examples[i // k]
        prompt_text = tokenizer.decode(prompts[i // k], skip_special_tokens=False) if reads_prompt(cfg.reward) else ""
        scores.append(score_sample(traj, example.golden_answers, example.data_source, i // k, cfg.reward, prompt_text))
    return EvalResult(table=build_table(scores, k), scores=scores, trajectories=trajectories, tools=tuple(tools.tools))


async def evaluate(
    examples: Sequence[QAExample],
    *,
    engine: Engine,
    tools: Toolbox,
    tokenizer: Tokenizer,
    cfg: SearchR1Config,
    max_prompts: int | None = None,
    prefix: str = "eval",
) -> dict[str, float]:
    """Periodic evaluation for a trainer: ``{"eval/exact_match": ..., "eval/<data_source>/exact_match": ...}``.

    Uses ``cfg.eval`` sampling (greedy by default) and ``cfg.rollout`` and the run's tools otherwise;
    ``max_prompts`` (e.g. ``trainer.eval_prompts``) picks prompts round-robin over data sources.
    """
    chosen = select_examples(examples, max_prompts)
    if not chosen:
        return {}
    result = await evaluate_examples(chosen, engine=engine, tools=tools, tokenizer=tokenizer, cfg=cfg)
    return result.metrics(prefix)
