"""Per-step metrics to three places: ``metrics.jsonl`` in the run dir, W&B and the console.

``metrics.jsonl`` is the source of truth for reports (one JSON object per step, written through
``searchr1.metrics_file``, the Miles hooks' writer too). W&B runs offline
by default inside the run dir (``wandb sync`` uploads it later); ``logger.mode=disabled`` skips it.
Multirun jobs share one process, so every Tracker must be finished: use it as a context manager or
call ``finish()`` in a ``finally``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, cast

from searchr1.metrics_file import MetricsWriter
from searchr1.paths import RunDir
from searchr1.run import RunContext

log = logging.getLogger(__name__)

WANDB_ID_FILE = "wandb_run_id"
WandbMode = Literal["online", "offline", "disabled"]

# What the one-line console summary shows, in order: (metric key, short label, format).
CONSOLE_KEYS = (
    ("reward/total", "reward", "{:.3f}"),
    ("reward/exact_match", "em", "{:.3f}"),
    ("reward/format", "fmt", "{:.3f}"),
    ("search_r1/turns_per_sample", "turns", "{:.2f}"),
    ("search_r1/search_calls_per_sample", "search", "{:.2f}"),
    ("loss_mask/observation_fraction", "obs", "{:.2f}"),
    ("tis/effective_sample_size", "ess", "{:.1f}"),
    ("train/loss", "loss", "{:.4f}"),
    ("sft/loss", "sft_loss", "{:.4f}"),
    ("eval/exact_match", "eval_em", "{:.3f}"),
    ("perf/step_seconds", "s", "{:.1f}"),
)


class Tracker:
    """Log ``{key: number}`` dicts per step; ``start_step`` > 0 resumes (later lines are dropped)."""

    def __init__(self, ctx: RunContext, *, total_steps: Optional[int] = None, start_step: int = 0) -> None:
        self.ctx = ctx
        self.path = ctx.run_dir / RunDir.METRICS
        self.last: dict[str, Any] = {}
        self._finished = False
        self._metrics = MetricsWriter(self.path, done_steps=start_step)
        self._wandb = _init_wandb(ctx, resume=start_step > 0)
        self._bar = _progress_bar(total_steps, start_step)

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        record = self._metrics.append(step, metrics)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=step)
        self.last = record
        line = console_line(record, self._bar.total if self._bar else None)
        if self._bar is not None:
            self._bar.update(1 if step > 0 else 0)  # step 0 is the starting policy's eval, not progress
            self._bar.write(line)
        else:
            print(line, flush=True)

    def finish(self) -> None:
        """Close W&B, the progress bar and the file, then print the last step's metrics. Idempotent."""
        if self._finished:
            return
        self._finished = True
        try:
            if self._wandb is not None:
                self._wandb.finish()
        finally:
            if self._bar is not None:
                self._bar.close()
            if self.last:
                print(summary_table(self.last), flush=True)


def console_line(record: Mapping[str, Any], total: Optional[int] = None) -> str:
    step = f"step {record['step']}" + (f"/{total}" if total else "")
    parts = [step] + [
        f"{label} {fmt.format(record[key])}"
        for key, label, fmt in CONSOLE_KEYS
        if isinstance(record.get(key), (int, float))
    ]
    return " | ".join(parts)


def summary_table(record: Mapping[str, Any]) -> str:
    width = max(len(k) for k in record)
    rows = [f"  {k:<{width}}  {_fmt(v)}" for k, v in sorted(record.items()) if k != "step"]
    return "\n".join([f"metrics at step {record.get('step')}:"] + rows)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _progress_bar(total: Optional[int], start: int) -> Any:
    if total is None:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True, leave=True)


def wandb_env(mode: str) -> dict[str, str]:
    """Environment for a W&B run in ``mode``: an offline run opens no connection. wandb (0.31) also posts
    its own OpenTelemetry metrics (``/sdk/otel/v1/metrics``) from finish() in offline mode;
    WANDB_ERROR_REPORTING=false turns that off, and the wandb-core service's error reporting with it
    (``--no-observability``). It must be set before the process's first ``wandb.init``."""
    return {} if mode == "online" else {"WANDB_ERROR_REPORTING": "false"}


def _init_wandb(ctx: RunContext, *, resume: bool) -> Any:
    cfg = ctx.cfg.logger
    if cfg.mode == "disabled":
        return None
    os.environ.update(wandb_env(cfg.mode))
    import wandb

    if cfg.mode == "online" and os.environ.get(cfg.api_key_env):
        wandb.login(key=os.environ[cfg.api_key_env], verify=False)
    started = time.perf_counter()
    run = wandb.init(
        project=cfg.project,
        entity=cfg.entity,
        group=cfg.group,
        name=ctx.run_name,
        tags=list(cfg.tags),
        dir=str(ctx.run_dir),
        mode=cast(WandbMode, cfg.mode),  # one of them: LoggerConfig checks logger.mode
        id=_wandb_id(ctx.run_dir, resume),
        resume="allow" if resume else None,
        config={**ctx.resolved, "sweep_point": dict(ctx.sweep_point), "choices": dict(ctx.choices)},
        reinit="finish_previous",
        settings=wandb.Settings(console="off", silent=True),
    )
    log.info("W&B %s run %s in %s (%.1fs)", cfg.mode, run.id, ctx.run_dir / "wandb", time.perf_counter() - started)
    return run


def _wandb_id(run_dir: Path, resume: bool) -> str:
    """The run's W&B id, kept in the run dir so a resumed run continues the same W&B run."""
    path = run_dir / WANDB_ID_FILE
    if resume and path.exists():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:8]
    path.write_text(run_id)
    return run_id
