"""``searchr1-eval eval.run=<run dir>``: score a run's saved checkpoints on the same held-out prompts.

Each checkpoint chosen by ``eval.steps`` (all, last, every:N) is rebuilt and rolled out greedily on the
same prompts with the same scoring code as any eval. The evaluated run dir gets an EM/F1 (per data
source) vs step table (``checkpoint_eval.json`` and ``.md``) and curve (``checkpoint_eval.png``),
which ``searchr1-report`` shows beside the training curves; W&B gets ``eval/*`` against the run's own
step axis (``eval/step``), in the run's W&B run when its run dir names one, else in its group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, Optional, cast

from searchr1.config.checks import ConfigError
from searchr1.config.schema import SearchR1Config
from searchr1.eval.identity import identity
from searchr1.eval.policy import checked_policy, engine_label, eval_examples, evaluate_policy, retriever_urls
from searchr1.eval.runner import EvalResult
from searchr1.eval.table import AVERAGE, PAPER_DATASETS
from searchr1.models.checkpoints import SavedPolicy, run_checkpoints, run_config, run_trainer_name
from searchr1.paths import RunDir
from searchr1.retriever.embedded import run_retriever
from searchr1.run import RunContext, save_resolved_config

log = logging.getLogger("searchr1.eval")

STEP_METRIC = "eval/step"


def select_steps(saved: list[int], spec: str) -> list[int]:
    """The saved steps ``eval.steps`` picks: all, last, or every:N (those divisible by N)."""
    if spec == "all" or not saved:
        return list(saved)
    if spec == "last":
        return [saved[-1]]
    every = int(spec.split(":", 1)[1])
    return [step for step in saved if step % every == 0]


def evaluate_run(ctx: RunContext, run_dir: Path) -> dict[str, Any]:
    """Score the chosen checkpoints of ``run_dir`` (eval.run); returns the table JSON (also written there)."""
    cfg = ctx.cfg
    checkpoints = _chosen_checkpoints(run_dir, cfg.eval.steps)
    checked_policy(cfg, str(checkpoints[max(checkpoints)]), "eval.run")  # same model as the run trained
    save_resolved_config(ctx)
    split_path, examples, chosen = eval_examples(cfg)
    rows = []
    with run_retriever(cfg, ctx.run_dir) as embedded:
        urls = retriever_urls(cfg, embedded)
        for step, path in checkpoints.items():
            saved = SavedPolicy(path=path, kind="checkpoint", step=step, run_dir=run_dir)
            result = asyncio.run(evaluate_policy(cfg, chosen, urls, ctx.run_dir, saved))
            rows.append(_row(saved, result))
            log.info(
                "step %d: EM %.3f, F1 %.3f (%s)",
                step,
                rows[-1]["exact_match"][AVERAGE],
                rows[-1]["f1"][AVERAGE],
                path.name,
            )
    payload = {
        "run_dir": str(run_dir),
        "steps": cfg.eval.steps,
        "data_sources": list(rows[0]["n"])[:-1],
        **identity(
            cfg,
            split_path=split_path,
            num_examples=len(examples),
            evaluated=len(chosen),
            engine=engine_label(cfg),
            retriever_urls=urls,
        ),
        "rows": rows,
    }
    _write(run_dir, payload)
    _log_to_wandb(cfg, run_dir, rows)
    return payload


def _chosen_checkpoints(run_dir: Path, spec: str) -> dict[int, Path]:
    if run_trainer_name(run_dir) is None:
        raise ConfigError(f"eval.run={str(run_dir)!r} is not a run dir (no resolved_config.yaml in it)")
    saved = run_checkpoints(run_dir, "eval.run")
    steps = select_steps(list(saved), spec)
    if not steps:
        raise ConfigError(
            f"eval.run={str(run_dir)!r} with eval.steps={spec}: no saved checkpoint matches "
            f"(saved steps: {list(saved) or 'none'}; trainer.checkpoint_keep=0 keeps every step)"
        )
    return {step: saved[step] for step in steps}


def _row(saved: SavedPolicy, result: EvalResult) -> dict[str, Any]:
    table = result.table
    return {
        "step": saved.step,
        "checkpoint": saved.record(),
        "exact_match": table.cells["EM"],
        "f1": table.cells["F1"],
        "n": table.counts,
    }


def markdown_steps(payload: dict[str, Any]) -> str:
    """One row per step: EM and F1 per data source, then their averages over sources."""
    sources = [*payload["data_sources"], AVERAGE]
    names = [PAPER_DATASETS.get(s, s) for s in sources]
    header = ["step", *(f"{n} EM" for n in names), *(f"{n} F1" for n in names)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in payload["rows"]:
        cells = [
            str(row["step"]),
            *(f"{row['exact_match'][s]:.3f}" for s in sources),
            *(f"{row['f1'][s]:.3f}" for s in sources),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    n = payload["rows"][0]["n"][AVERAGE]
    return (
        f"**{payload['run_dir']}: held-out {payload['data']['split']} split, {n} samples per step**\n\n"
        + "\n".join(lines)
        + "\n"
    )


def _write(run_dir: Path, payload: dict[str, Any]) -> None:
    from searchr1.report.plots import plot_checkpoint_eval

    out = run_dir / RunDir.CHECKPOINT_EVAL
    out.write_text(json.dumps(payload, indent=2))
    table = markdown_steps(payload)
    out.with_suffix(".md").write_text(table)
    plot_checkpoint_eval({run_dir.name: payload["rows"]}, run_dir / RunDir.CHECKPOINT_EVAL_PLOT)
    print(table)
    print(f"wrote {out}, {out.with_suffix('.md')} and {run_dir / RunDir.CHECKPOINT_EVAL_PLOT}")


def step_metrics(row: dict[str, Any]) -> dict[str, float]:
    """W&B keys of one step: eval/exact_match and eval/f1 (averaged over sources), and per source."""
    metrics = {
        STEP_METRIC: float(row["step"]),
        "eval/exact_match": row["exact_match"][AVERAGE],
        "eval/f1": row["f1"][AVERAGE],
    }
    for source in row["n"]:
        if source != AVERAGE:
            metrics[f"eval/{source}/exact_match"] = row["exact_match"][source]
            metrics[f"eval/{source}/f1"] = row["f1"][source]
    return metrics


def _log_to_wandb(cfg: SearchR1Config, run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Resume the run's own W&B run (its id is in the run dir), else start one in its group; eval/* is
    plotted against eval/step, so steps earlier than the run's last W&B step are kept."""
    if cfg.logger.mode == "disabled":
        return
    from searchr1.tracking import WANDB_ID_FILE, WandbMode, wandb_env

    os.environ.update(wandb_env(cfg.logger.mode))
    import wandb

    run_id = _stored_id(run_dir / WANDB_ID_FILE)
    logger = run_config(run_dir, "eval.run").get("logger") or {}
    run = wandb.init(
        project=logger.get("project", cfg.logger.project),
        entity=logger.get("entity", cfg.logger.entity),
        group=logger.get("group") or run_dir.name,
        dir=str(run_dir),
        mode=cast(WandbMode, cfg.logger.mode),
        id=run_id,
        resume="allow" if run_id else None,
        name=None if run_id else f"{run_dir.name}-checkpoint-eval",
        job_type="checkpoint-eval",
        reinit="finish_previous",
        settings=wandb.Settings(console="off", silent=True),
    )
    try:
        run.define_metric(STEP_METRIC)
        run.define_metric("eval/*", step_metric=STEP_METRIC)
        for row in rows:
            run.log(step_metrics(row))
        log.info("W&B %s run %s: eval/* at steps %s", cfg.logger.mode, run.id, [row["step"] for row in rows])
    finally:
        run.finish()


def _stored_id(path: Path) -> Optional[str]:
    return path.read_text().strip() if path.is_file() else None
