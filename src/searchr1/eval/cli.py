"""``searchr1-eval``: the paper's evaluation table for a model, without training.

Configured exactly like a training run (same config tree, same overrides), plus ``eval.*``:

    searchr1-eval                                             # embedded SmolLM2 on the synthetic test split
    searchr1-eval eval.checkpoint=outputs/<run>               # a trained policy (run dir, checkpoint, HF dir)
    searchr1-eval eval.run=outputs/<run> eval.steps=all       # every saved checkpoint: EM/F1 vs step
    searchr1-eval model=qwen2.5-3B data=nq_hotpotqa eval.sglang_url=http://gpu-host:30000 \\
        backend.urls=[http://retriever:8000]                 # any HF checkpoint behind SGLang

The tokenizer always comes from ``model.hf_checkpoint`` (token ids go to SGLang, never text).
Results: ``<run dir>/eval.json`` (or ``eval.output``, with the scored checkpoint's path, step and
sha256), a Markdown table next to it, and one JSON line per sample in ``eval_samples.jsonl``.
``eval.run`` writes its step table into the evaluated run dir (``eval/run_curve.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from searchr1.entry import CONFIG_MODULE, CONFIG_NAME, VERSION_BASE, run_checked, start
from searchr1.config.schema import SearchR1Config
from searchr1.eval.identity import identity
from searchr1.eval.policy import checked_policy, engine_label, eval_examples, evaluate_policy, retriever_urls
from searchr1.eval.runner import EvalResult
from searchr1.eval.table import markdown
from searchr1.paths import RunDir
from searchr1.retriever.embedded import run_retriever
from searchr1.run import RunContext, save_resolved_config

log = logging.getLogger("searchr1.eval")


def main() -> None:
    start("searchr1-eval", _hydra_main, run_eval)


@hydra.main(version_base=VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME)
def _hydra_main(cfg: DictConfig) -> None:
    run_checked(cfg, run_eval, program="searchr1-eval")


def run_eval(ctx: RunContext) -> dict[str, Any]:
    """Evaluate, print the table, write the result files; returns the result JSON."""
    cfg = ctx.cfg
    if cfg.eval.run:
        from searchr1.eval.run_curve import evaluate_run

        return evaluate_run(ctx, Path(cfg.eval.run))
    # A bad checkpoint fails in one line, before data, model or retriever.
    saved = checked_policy(cfg, cfg.eval.checkpoint, "eval.checkpoint") if cfg.eval.checkpoint else None
    save_resolved_config(ctx)
    split_path, examples, chosen = eval_examples(cfg)
    with run_retriever(cfg, ctx.run_dir) as embedded:
        urls = retriever_urls(cfg, embedded)
        result = asyncio.run(evaluate_policy(cfg, chosen, urls, ctx.run_dir, saved))
    payload = {
        "run_name": ctx.run_name,
        **identity(
            cfg,
            split_path=split_path,
            num_examples=len(examples),
            evaluated=len(chosen),
            engine=engine_label(cfg),
            retriever_urls=urls,
        ),
        "checkpoint": saved.record() if saved else None,
        "table": {"columns": result.table.columns, "rows": result.table.cells, "n": result.table.counts},
        "metrics": result.metrics(),
    }
    _write_results(ctx, cfg, result, payload)
    return payload


def _write_results(ctx: RunContext, cfg: SearchR1Config, result: EvalResult, payload: dict[str, Any]) -> None:
    out = Path(cfg.eval.output) if cfg.eval.output else ctx.run_dir / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    title = f"{cfg.model.name} · {cfg.data.name}/{cfg.eval.split} · " + (
        "greedy" if cfg.eval.temperature == 0 else f"T={cfg.eval.temperature}, k={cfg.eval.pass_k}"
    )
    table = markdown(result.table, title)
    out.with_suffix(".md").write_text(table)
    with (out.parent / RunDir.EVAL_SAMPLES).open("w") as handle:
        for score, traj in zip(result.scores, result.trajectories):
            handle.write(json.dumps({**score.as_dict(), "response": traj.response_text, **traj.token_record()}) + "\n")
    print(table)
    print(f"wrote {out}, {out.with_suffix('.md')} and {out.parent / RunDir.EVAL_SAMPLES}")
