"""Per-sample scores of a finished trajectory: EM (the configured reward's), sub-EM and token F1."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from searchr1.config.schema import RewardConfig
from searchr1.reward import extract_answer, score_response, substring_exact_match, token_f1
from searchr1.rollout.trajectory import Trajectory


@dataclass(frozen=True)
class SampleScore:
    data_source: str
    prompt_index: int
    """Position of the prompt in the evaluated list (pass@k groups samples by it)."""
    answer: str | None
    golden_answers: list[str]
    exact_match: float
    sub_exact_match: float
    f1: float
    turns: int
    search_calls: int
    status: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_sample(
    traj: Trajectory,
    golden_answers: Sequence[str],
    data_source: str,
    prompt_index: int,
    reward_cfg: RewardConfig,
    prompt_text: str = "",
) -> SampleScore:
    """EM is the reward function's own EM, so eval and training agree by construction."""
    answer = extract_answer(traj.response_text)
    reward = score_response(traj.response_text, list(golden_answers), reward_cfg, prompt_text, len(traj.tool_calls))
    return SampleScore(
        data_source=data_source,
        prompt_index=prompt_index,
        answer=answer,
        golden_answers=list(golden_answers),
        exact_match=reward.exact_match,
        sub_exact_match=0.0 if answer is None else substring_exact_match(answer, list(golden_answers)),
        f1=0.0 if answer is None else token_f1(answer, golden_answers),
        turns=traj.turns,
        search_calls=traj.search_calls,
        status=traj.status,
    )
