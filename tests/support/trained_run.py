"""One tiny real embedded run (SmolLM2, LoRA, 2 steps, every checkpoint kept); the ``trained_run`` fixture
(tests/conftest.py) trains it once per session for the export and checkpoint-eval tests."""

from __future__ import annotations

from pathlib import Path

from searchr1.config import to_typed
from searchr1.run import RunContext, save_resolved_config
from tests.support.compose import compose_config
from tests.support.data import TINY_ROLLOUT

TINY_RUN = [
    *TINY_ROLLOUT,
    "trainer.steps=2",
    "trainer.checkpoint_keep=0",
    "trainer.init_from=null",  # from the base weights, whatever warm start the model ships
    # Tiny rollouts rarely differ in reward (zero advantages, no policy gradient); the entropy bonus and a
    # large learning rate move the adapters visibly in 2 steps, so an export that dropped them would show.
    "grpo.entropy_coef=0.01",
    "trainer.lr=0.01",
    "logger.mode=offline",
]


def train_tiny_run(run_dir: Path) -> Path:
    """Train ``TINY_RUN`` into ``run_dir`` (2 steps, checkpoints at steps 1 and 2) and return it."""
    from searchr1.trainers.local.train import train

    cfg = compose_config(TINY_RUN)
    ctx = RunContext.build(cfg, to_typed(cfg), run_dir)
    save_resolved_config(ctx)  # as the CLI does: the run's config says how to rebuild its policy
    train(ctx)
    return ctx.run_dir
