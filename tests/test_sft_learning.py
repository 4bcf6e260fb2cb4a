"""Warm start end to end on the real SmolLM2: ``searchr1-sft`` writes what trainer.init_from loads, and
GRPO from the shipped warm start produces samples that close their tags and search (the guard against a
regression to a policy that never searches)."""

from __future__ import annotations

import json

import pytest

from searchr1.config import to_typed
from searchr1.models.loading import check_warm_start
from searchr1.run import RunContext
from searchr1.paths import RunDir
from searchr1.trainers.local.train import train
from searchr1.sft.cli import run_sft
from tests.support.compose import compose_config
from tests.support.data import SMALL_ENTITIES


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["cpu_warmstart", "cpu_warmstart_tools"])
def test_sft_writes_a_warm_start_with_its_provenance(tmp_path, preset):
    cfg = compose_config(
        [
            f"+experiment={preset}",
            f"data.num_entities={SMALL_ENTITIES}",
            "sft.steps=2",
            "sft.num_examples=4",
            "sft.batch_size=2",
            "trainer.threads=1",
            "logger.mode=disabled",
        ]
    )
    ctx = RunContext.build(cfg, to_typed(cfg), tmp_path / "sft", sweep_point={"sft.steps": "2"})
    out = run_sft(ctx)
    assert check_warm_start(str(out), 16, "trainer.init_from").kind == "adapter"
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["sft"]["steps"] == 2 and provenance["data"]["num_entities"] == SMALL_ENTITIES
    assert provenance["trajectories"]["demonstrations"] + provenance["trajectories"]["dropped"] == 4
    assert provenance["command"].startswith("searchr1-sft")
    assert (provenance["data"]["questions"], provenance["tools"]) == (cfg.data.questions, list(cfg.tools))
    losses = [json.loads(line)["sft/loss"] for line in (ctx.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)


@pytest.mark.slow
def test_grpo_from_the_shipped_warm_start_closes_its_tags_and_searches(quickstart_run):
    """The quickstart's first step rolls out the shipped warm start itself: its samples search and answer."""
    rollouts = (quickstart_run / RunDir.ROLLOUTS).read_text().splitlines()
    samples = [sample for sample in map(json.loads, rollouts) if sample["step"] == 1]
    assert len(samples) == 10
    searched = [s for s in samples if s["search_calls"] >= 1 and "</search>" in s["response"]]
    answered = [s for s in samples if s["response"].rstrip().endswith("</answer>")]
    assert len(searched) >= 9 and len(answered) >= 8, [s["response"] for s in samples]
    metrics = json.loads((quickstart_run / RunDir.METRICS).read_text().splitlines()[0])
    assert metrics["search_r1/search_calls_per_sample"] >= 0.8 and metrics["reward/format"] > 0
    assert (quickstart_run / RunDir.POLICY / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_grpo_from_the_tools_warm_start_searches_then_calls_the_calculator(tmp_path):
    cfg = compose_config(
        [
            "+experiment=cpu_learn_tools",
            f"data.num_entities={SMALL_ENTITIES}",
            "trainer.steps=1",
            "trainer.prompts_per_step=1",
            "rollout.n_samples_per_prompt=3",
            "trainer.eval_every=0",
            "logger.mode=disabled",
        ]
    )
    ctx = RunContext.build(cfg, to_typed(cfg), tmp_path / "run")
    train(ctx)
    samples = [json.loads(line) for line in (ctx.run_dir / RunDir.ROLLOUTS).read_text().splitlines()]
    both = [s for s in samples if "</search>" in s["response"] and "</calculator>\n\n<result>" in s["response"]]
    assert len(both) >= 2, [s["response"] for s in samples]
    metrics = json.loads((ctx.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["tool/search/calls_per_sample"] >= 0.6 and metrics["tool/calculator/calls_per_sample"] >= 0.6
