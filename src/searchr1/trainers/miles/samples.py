"""Miles' ``Sample`` and our ``Trajectory``: the generate hook fills a Sample from a trajectory (and keeps
its counts under ``Sample.metadata[METADATA_KEY]``), the reward and rollout-log hooks read them back.

Invariants Miles relies on but does not check are enforced here: see :func:`check_sample`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from searchr1.rollout.trajectory import Trajectory
from searchr1.tools.base import ToolCall

METADATA_KEY = "searchr1"
"""Our per-sample counts live under this key of ``Sample.metadata`` (Miles ships only raw_reward/round_number)."""


class SampleInvariantError(ValueError):
    """A filled Sample that Miles would mis-train on (misaligned masks/logprobs/tokens)."""


def fill_sample(sample: Any, traj: Trajectory, *, engine_aborted: bool, filler_token: int = 0) -> None:
    """Our trajectory into Miles' fields. A FAILED trajectory (the engine failed mid-way) keeps none of
    its partial response: Miles would train those tokens with the group's advantage of a 0 reward."""
    status = type(sample).Status
    if _status(traj.status, engine_aborted, status) is status.FAILED:
        reason = f"the engine failed after {len(traj.response_ids)} response tokens ({traj.turns} turns)"
        fail_sample(sample, traj.prompt_ids, filler_token, reason, counts=trajectory_counts(traj))
        return
    sample.tokens = list(traj.prompt_ids) + list(traj.response_ids)
    sample.response = traj.response_text
    sample.response_length = len(traj.response_ids)
    sample.loss_mask = [int(m) for m in traj.loss_mask]
    sample.rollout_log_probs = [float(lp) for lp in traj.rollout_logprobs]
    sample.status = _status(traj.status, engine_aborted, status)
    sample.non_generation_time = traj.tool_seconds  # keeps Miles' tokens/s honest about tool time
    sample.metadata = {**(sample.metadata or {}), METADATA_KEY: trajectory_counts(traj)}


def _status(ours: str, engine_aborted: bool, status: Any) -> Any:
    if ours == "completed":
        return status.COMPLETED
    if ours == "truncated":
        return status.TRUNCATED
    # ABORTED only when Miles aborted the rollout: an aborted sample gets no reward, and a sample
    # without a reward in a training group crashes Miles. An engine/HTTP failure is FAILED instead.
    return status.ABORTED if engine_aborted else status.FAILED


def trajectory_counts(traj: Trajectory) -> dict[str, Any]:
    return {
        "turns": traj.turns,
        "search_calls": traj.search_calls,
        "tool_calls": [call.record() for call in traj.tool_calls],
        "observation_tokens": traj.observation_tokens,
        "invalid_actions": traj.invalid_actions,
        "final_answer": traj.final_answer,
        "status": traj.status,
        "tool_seconds": traj.tool_seconds,
    }


def fail_sample(
    sample: Any,
    prompt: Sequence[int],
    filler_token: int,
    reason: str,
    *,
    aborted: bool = False,
    counts: Optional[dict[str, Any]] = None,
) -> None:
    """One masked filler (EOS) token: a valid, zero-length-in-effect response Miles can score (reward 0:
    the response is empty) and train past. ``counts`` keeps what the trajectory did before it failed."""
    sample.tokens = list(prompt) + [filler_token]
    sample.response = ""
    sample.response_length = 1
    sample.loss_mask = [0]
    sample.rollout_log_probs = [0.0]
    sample.status = type(sample).Status.ABORTED if aborted else type(sample).Status.FAILED
    sample.non_generation_time = float((counts or {}).get("tool_seconds", 0.0))
    status = "aborted" if aborted else "failed"
    sample.metadata = {**(sample.metadata or {}), METADATA_KEY: {**(counts or {}), "error": reason, "status": status}}


def check_sample(sample: Any, prompt_len: int) -> None:
    """What Miles needs and never checks on the generate path (Sample.validate() is not called)."""
    n = sample.response_length
    if not (len(sample.loss_mask) == len(sample.rollout_log_probs) == n):
        raise SampleInvariantError(
            f"loss_mask ({len(sample.loss_mask)}), rollout_log_probs ({len(sample.rollout_log_probs)}) and "
            f"response_length ({n}) differ"
        )
    if len(sample.tokens) != prompt_len + n:
        raise SampleInvariantError(f"tokens ({len(sample.tokens)}) != prompt ({prompt_len}) + response ({n})")
    if any(lp != 0.0 for lp, m in zip(sample.rollout_log_probs, sample.loss_mask) if not m):
        raise SampleInvariantError("an observation token carries a non-zero rollout logprob")


def sample_trajectory(sample: Any) -> Trajectory:
    """A Trajectory view of a filled Sample (for the shared metrics module)."""
    counts = (sample.metadata or {}).get(METADATA_KEY, {})
    n = sample.response_length
    status = counts.get("status", "completed")
    return Trajectory(
        prompt_ids=list(sample.tokens[: len(sample.tokens) - n]),
        response_ids=list(sample.tokens[len(sample.tokens) - n :]),
        loss_mask=list(sample.loss_mask or [1] * n),
        rollout_logprobs=list(sample.rollout_log_probs or [0.0] * n),
        response_text=sample.response,
        turns=counts.get("turns", 0),
        tool_calls=[ToolCall(*record) for record in counts.get("tool_calls", [])],
        observation_tokens=counts.get("observation_tokens", 0),
        invalid_actions=counts.get("invalid_actions", 0),
        final_answer=counts.get("final_answer"),
        status="aborted" if status == "failed" else status,
    )
