"""``--custom-rm-path`` (also under ``--group-rm``): our reward for Miles' samples, as a dict
(``--reward-key total``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from searchr1.config.schema import RewardConfig
from searchr1.reward import RewardBreakdown, score_response
from searchr1.trainers.miles.runtime import hook_settings
from searchr1.trainers.miles.samples import METADATA_KEY


async def reward(args: Any, samples: Any, **kwargs: Any) -> Any:
    """One sample -> one reward dict; a list (``--group-rm``, or list outputs) -> a list, in order."""
    cfg = hook_settings(args).reward
    if isinstance(samples, list):
        return [score_sample(s, cfg) for s in samples]
    return score_sample(samples, cfg)


def score_sample(sample: Any, cfg: RewardConfig) -> dict[str, float]:
    prompt_text = sample.prompt if isinstance(sample.prompt, str) else ""
    breakdown = score_response(
        sample.response, golden_answers(sample.label), cfg, prompt_text=prompt_text, tool_calls=tool_call_count(sample)
    )
    return reward_dict(breakdown)


def tool_call_count(sample: Any) -> Optional[int]:
    """The sample's well-formed tool calls, as our generate hook recorded them; None for a sample it never
    filled (the reward then refuses a tool term rather than guess)."""
    counts = (sample.metadata or {}).get(METADATA_KEY)
    return None if counts is None else len(counts.get("tool_calls", []))


def reward_dict(breakdown: RewardBreakdown) -> dict[str, float]:
    """The components Miles keeps in Sample.reward; ``tool`` and ``f1`` only where the config has them."""
    optional = {key: value for key, value in (("tool", breakdown.tool), ("f1", breakdown.f1)) if value is not None}
    return {"total": breakdown.total, "exact_match": breakdown.exact_match, "format": breakdown.format, **optional}


def golden_answers(label: Any) -> list[str]:
    """Search-R1's ``reward_model`` label (``{"ground_truth": {"target": [...]}}``), a list or a string."""
    if isinstance(label, Mapping):
        target = label.get("ground_truth", label)
        target = target.get("target", []) if isinstance(target, Mapping) else target
        return golden_answers(target)
    if isinstance(label, str):
        return [label]
    return [str(a) for a in (label or [])]


def sample_breakdown(sample: Any, cfg: RewardConfig) -> RewardBreakdown:
    """A scored sample's reward (the dict our reward hook returned), or the sample scored now (Miles never
    scores an aborted one)."""
    value = sample.reward
    if isinstance(value, Mapping):
        optional = {key: float(value[key]) for key in ("tool", "f1") if key in value}
        return RewardBreakdown(
            total=float(value["total"]),
            exact_match=float(value["exact_match"]),
            format=float(value["format"]),
            **optional,
        )
    if value is None:  # aborted samples are never scored by Miles
        return score_response(sample.response, golden_answers(sample.label), cfg, tool_calls=tool_call_count(sample))
    return RewardBreakdown(total=float(value), exact_match=float(value), format=0.0)
