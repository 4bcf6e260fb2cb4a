"""Score one policy on held-out prompts: what ``searchr1-eval`` and ``eval.run`` (run_curve) share.

The policy is checked against ``model.*`` before anything loads, the examples come from ``eval.split``
(at most ``eval.max_prompts``), and each rollout runs on the embedded engine or on ``eval.sglang_url``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import aiohttp

from searchr1.config.checks import ConfigError
from searchr1.config.schema import LocalTrainerConfig, SearchR1Config
from searchr1.eval.runner import EvalResult, evaluate_examples, select_examples
from searchr1.models.checkpoints import SavedPolicy, find_policy, run_model_config

log = logging.getLogger("searchr1.eval")

SGLANG_TIMEOUT_S = 600.0


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
    return embedded or cfg.backend.retriever_urls


async def evaluate_policy(
    cfg: SearchR1Config, examples, urls: list[str], run_dir: Path, saved: Optional[SavedPolicy] = None
) -> EvalResult:
    """``examples`` rolled out and scored with ``saved`` (None: the base model, or eval.sglang_url's)."""
    from searchr1.models.loading import load_policy_tokenizer
    from searchr1.tools.base import ToolContext
    from searchr1.tools.registry import selected_nodes
    from searchr1.tools.toolbox import open_toolbox

    tokenizer = load_policy_tokenizer(cfg.model)
    async with aiohttp.ClientSession() as session:
        context = ToolContext(session, run_dir=run_dir, backend=cfg.backend, retriever_urls=urls or None)
        tools = open_toolbox(selected_nodes(cfg), context, action_format=cfg.rollout.action_format, tokenizer=tokenizer)
        engine = _engine(cfg, tokenizer, session, saved)
        try:
            return await evaluate_examples(examples, engine=engine, tools=tools, tokenizer=tokenizer, cfg=cfg)
        finally:
            await tools.close()
            if hasattr(engine, "close"):
                await engine.close()


def _engine(cfg: SearchR1Config, tokenizer: Any, session: aiohttp.ClientSession, saved: Optional[SavedPolicy]):
    if cfg.eval.sglang_url:
        from searchr1.engines.sglang import SGLangEngine

        log.info("generating through SGLang at %s (eval.sglang_url)", cfg.eval.sglang_url)
        return SGLangEngine(cfg.eval.sglang_url, session, SGLANG_TIMEOUT_S)
    from searchr1.engines.local import LocalEngine
    from searchr1.models.checkpoints import load_saved_policy
    from searchr1.models.loading import load_model, torch_dtype

    embedded = embedded_engine_config(cfg)
    log.info(
        "generating with the embedded engine (%s in %s); set eval.sglang_url to use a GPU server",
        cfg.model.name,
        embedded.engine_dtype,
    )
    if saved is None:
        model = load_model(cfg.model).eval().requires_grad_(False)
    else:  # LoRA merged into the weights, so generation runs at base-model speed
        log.info("scoring %s %s (step %s)", saved.kind, saved.path, saved.step)
        model = load_saved_policy(saved, cfg.model)
    model = model.to(torch_dtype(embedded.engine_dtype))
    return LocalEngine(model, tokenizer, max_batch=embedded.engine_max_batch, seed=cfg.seed)


def embedded_engine_config(cfg: SearchR1Config) -> LocalTrainerConfig:
    """Where the embedded engine's width and precision come from (trainer.engine_max_batch,
    trainer.engine_dtype): the embedded trainer's settings, whichever trainer the run names."""
    return cfg.trainer if isinstance(cfg.trainer, LocalTrainerConfig) else LocalTrainerConfig()


def engine_label(cfg: SearchR1Config) -> str:
    """What generated an eval's responses, as its result records it."""
    if cfg.eval.sglang_url:
        return f"sglang:{cfg.eval.sglang_url}"
    return f"embedded:{embedded_engine_config(cfg).engine_dtype}"
