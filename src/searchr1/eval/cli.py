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
from typing import Any, Optional

import aiohttp
import hydra
from omegaconf import DictConfig

from searchr1.config.checks import ConfigError
from searchr1.entry import CONFIG_MODULE, CONFIG_NAME, VERSION_BASE, run_checked, start
from searchr1.config.schema import SearchR1Config
from searchr1.eval.identity import identity
from searchr1.eval.runner import EvalResult, evaluate_examples, select_examples
from searchr1.eval.table import markdown
from searchr1.models.checkpoints import SavedPolicy, find_policy, run_model_config
from searchr1.retriever.embedded import run_retriever
from searchr1.run import RunContext, save_resolved_config

log = logging.getLogger("searchr1.eval")

SAMPLES_FILE = "eval_samples.jsonl"
SGLANG_TIMEOUT_S = 600.0


def main() -> None:
    start("searchr1-eval", _hydra_main)


@hydra.main(version_base=VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME)
def _hydra_main(cfg: DictConfig) -> None:
    run_checked(cfg, run_eval)


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
    engine = f"sglang:{cfg.eval.sglang_url}" if cfg.eval.sglang_url else "embedded"
    payload = {
        "run_name": ctx.run_name,
        **identity(
            cfg,
            split_path=split_path,
            num_examples=len(examples),
            evaluated=len(chosen),
            engine=engine,
            retriever_urls=urls,
        ),
        "checkpoint": saved.record() if saved else None,
        "table": {"columns": result.table.columns, "rows": result.table.cells, "n": result.table.counts},
        "metrics": result.metrics(),
    }
    _write_results(ctx, cfg, result, payload)
    return payload


def checked_policy(cfg: SearchR1Config, given: str, key: str) -> SavedPolicy:
    """``given`` resolved, and refused in one line when its run trained another model than ``model.*``
    (the tokenizer comes from ``model.hf_checkpoint``)."""
    saved = find_policy(given, key)
    if saved.run_dir is not None:
        trained = run_model_config(saved.run_dir, key)
        if (trained.hf_checkpoint, trained.gguf_file) != (cfg.model.hf_checkpoint, cfg.model.gguf_file):
            raise ConfigError(
                f"{key}={given!r} was trained on model.hf_checkpoint={trained.hf_checkpoint} but this "
                f"eval loads {cfg.model.hf_checkpoint}; add model={trained.name}"
            )
    return saved


def eval_examples(cfg: SearchR1Config) -> tuple[str, list, list]:
    """The split's path, its examples, and the ones evaluated (eval.max_prompts, round-robin over sources)."""
    from searchr1.data import ensure_data
    from searchr1.data.dataset import load_split

    ensure_data(cfg.data)
    split_path = cfg.data.test_path if cfg.eval.split == "test" else cfg.data.train_path
    examples = load_split(split_path, cfg.data.prompt_style)
    chosen = select_examples(examples, cfg.eval.max_prompts)
    log.info(
        "evaluating %d of %d %s prompts (eval.max_prompts=%s)",
        len(chosen),
        len(examples),
        cfg.eval.split,
        cfg.eval.max_prompts,
    )
    return split_path, examples, chosen


def retriever_urls(cfg: SearchR1Config, embedded: Optional[list[str]]) -> list[str]:
    return embedded or (list(cfg.backend.urls) if cfg.backend.name == "local" else [])


async def evaluate_policy(
    cfg: SearchR1Config, examples, urls: list[str], run_dir: Path, saved: Optional[SavedPolicy] = None
) -> EvalResult:
    """``examples`` rolled out and scored with ``saved`` (None: the base model, or eval.sglang_url's)."""
    from searchr1.search.factory import build_search_backend
    from searchr1.models.loading import load_policy_tokenizer

    tokenizer = load_policy_tokenizer(cfg.model)
    async with aiohttp.ClientSession() as session:
        search = build_search_backend(cfg.backend, cfg.search, session=session, urls=urls or None, run_dir=run_dir)
        engine = _engine(cfg, tokenizer, session, saved)
        try:
            return await evaluate_examples(examples, engine=engine, search=search, tokenizer=tokenizer, cfg=cfg)
        finally:
            await search.close()
            if hasattr(engine, "close"):
                await engine.close()


def _engine(cfg: SearchR1Config, tokenizer: Any, session: aiohttp.ClientSession, saved: Optional[SavedPolicy]):
    if cfg.eval.sglang_url:
        from searchr1.engines.sglang import SGLangEngine

        log.info("generating through SGLang at %s (eval.sglang_url)", cfg.eval.sglang_url)
        return SGLangEngine(cfg.eval.sglang_url, session, SGLANG_TIMEOUT_S)
    from searchr1.engines.local import LocalEngine
    from searchr1.models.checkpoints import load_saved_policy
    from searchr1.models.loading import load_model

    log.info("generating with the embedded engine (%s); set eval.sglang_url to use a GPU server", cfg.model.name)
    max_batch = getattr(cfg.trainer, "engine_max_batch", 16)
    if saved is None:
        model = load_model(cfg.model).eval().requires_grad_(False)
    else:  # LoRA merged into the weights, so generation runs at base-model speed
        log.info("scoring %s %s (step %s)", saved.kind, saved.path, saved.step)
        model = load_saved_policy(saved, cfg.model)
    return LocalEngine(model, tokenizer, max_batch=max_batch, seed=cfg.seed)


def _write_results(ctx: RunContext, cfg: SearchR1Config, result: EvalResult, payload: dict[str, Any]) -> None:
    out = Path(cfg.eval.output) if cfg.eval.output else ctx.run_dir / "eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    title = f"{cfg.model.name} · {cfg.data.name}/{cfg.eval.split} · " + (
        "greedy" if cfg.eval.temperature == 0 else f"T={cfg.eval.temperature}, k={cfg.eval.pass_k}"
    )
    table = markdown(result.table, title)
    out.with_suffix(".md").write_text(table)
    with (out.parent / SAMPLES_FILE).open("w") as handle:
        for score, traj in zip(result.scores, result.trajectories):
            handle.write(json.dumps({**score.as_dict(), "response": traj.response_text, **traj.token_record()}) + "\n")
    print(table)
    print(f"wrote {out}, {out.with_suffix('.md')} and {out.parent / SAMPLES_FILE}")
