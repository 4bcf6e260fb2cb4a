"""The first thing a local run says: what it is about to do and roughly how long its first step takes, so
that a user knows at once whether to wait or to make the run smaller."""

from __future__ import annotations

from searchr1.config.schema import LocalTrainerConfig, SearchR1Config

# The default run's step 1 took 40 s on a quiet 2-core machine (SmolLM2-135M, two threads, 2026-12-06; 94 s on
# one thread before the update's and the engine's changes that day): 2 prompts x 5 samples, 2 search turns and a
# final turn of up to 64 tokens. Other sizes scale with that token budget.
MEASURED_STEP_S = 40.0
MEASURED_TOKENS = 2 * 5 * 3 * 64


def first_step_seconds(cfg: SearchR1Config) -> float:
    """A rough time for step 1 of SmolLM2-135M on 2 cores: the measured step scaled by the tokens the
    step may generate (samples x turns x rollout.max_turn_tokens)."""
    rollout = cfg.rollout
    samples = LocalTrainerConfig.of(cfg).prompts_per_step * rollout.n_samples_per_prompt
    turns = rollout.max_turns + int(rollout.final_turn)
    return MEASURED_STEP_S * samples * turns * rollout.max_turn_tokens / MEASURED_TOKENS


def plan_lines(cfg: SearchR1Config) -> list[str]:
    """What the run will do (steps, rollout per step, search), then the expected wait."""
    rollout, trainer = cfg.rollout, LocalTrainerConfig.of(cfg)
    search = f"{cfg.retriever.kind} retriever" if cfg.backend.name == "local" else f"backend={cfg.backend.name}"
    seconds = first_step_seconds(cfg)
    wait = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(seconds, 1):.0f} s"
    return [
        f"about to train {cfg.model.name} with GRPO on the CPU: {trainer.steps} steps of {trainer.prompts_per_step} "
        f"prompts x {rollout.n_samples_per_prompt} samples, up to {rollout.max_turns} searches ({search}), "
        f"{rollout.max_turn_tokens} tokens a turn",
        f"the model loads first (about a minute the first time), then step 1 takes roughly {wait} "
        "(measured for SmolLM2-135M on 2 cores; a larger model takes longer)",
    ]
