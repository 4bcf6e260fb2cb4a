"""``--custom-rollout-log-function-path`` and ``--custom-eval-rollout-log-function-path``: our rollout
metrics next to Miles' own (W&B through Miles' tracking, and ``<run dir>/metrics.jsonl``), and the
training-health rules (``health.*``) over them: ``stop`` writes the stop file (stop_file.py), which the
hooks honour."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

from searchr1.health import HealthMonitor, rollout_health, warn
from searchr1.metrics_file import MetricsWriter
from searchr1.reward import RewardBreakdown
from searchr1.trainers.miles.reward_hook import golden_answers, sample_breakdown
from searchr1.trainers.miles.runtime import hook_settings, search_stats_and_reset
from searchr1.trainers.miles.samples import METADATA_KEY, sample_trajectory
from searchr1.trainers.miles.stop_file import HEALTH_STOP_FILE, request_stop, stop_reason

log = logging.getLogger(__name__)

FAILED_SAMPLES_KEY = "rollout/failed_samples"
"""Samples of a rollout step that failed (engine error on any turn, or a hook error), each logged once."""
EVAL_SKIP_REASON = "health_stop"
"""Miles logs an eval skipped after a health stop as ``eval/skipped_health_stop``."""
# Miles binds these W&B prefixes to a step metric; anything else would plot against W&B's _step.
MILES_STEP_PREFIXES = ("rollout/", "train/", "eval/", "perf/", "multi_turn/", "passrate/")


def log_rollout(rollout_id: int, args: Any, samples: list, rollout_extra_metrics: Any, rollout_time: float) -> bool:
    """Log our rollout metrics to W&B (via Miles' tracking) and to ``<run dir>/metrics.jsonl``, after the
    health rules have looked at them.

    Returns False so Miles' default rollout logging still runs. Raises :class:`HealthStopError` (ending the
    Miles job) when an earlier rollout's health rule asked to stop."""
    reason = _stop_reason_of(args)
    if reason is not None:
        raise HealthStopError(
            f"{reason} (searchr1 removes {hook_settings(args).run_dir / HEALTH_STOP_FILE} when it launches the run "
            "again; delete it yourself before replaying miles_command.sh)"
        )
    try:
        metrics = rollout_log_metrics(samples, args, search_stats=search_stats_and_reset())
        metrics.update(check_health(args, rollout_id, metrics))
        append_metrics(hook_settings(args).metrics_path, rollout_id, metrics)
        _log_to_miles(args, rollout_id, metrics)
    except Exception:  # our extra metrics must never stop Miles' own logging or training
        log.exception("searchr1 rollout metrics failed at rollout %s", rollout_id)
    return False


def log_eval(rollout_id: int, args: Any, data: dict, extra_metrics: Optional[dict]) -> bool:
    """``--custom-eval-rollout-log-function-path``. After a health stop every generate call returns a FAILED
    sample, so an eval then (Miles evaluates after the step that fired the rule) would read 0 on every
    eval set, like a collapse; it is logged as skipped instead, through Miles' own skip record. Returns
    True (Miles logs nothing else) only then."""
    if _stop_reason_of(args) is None:
        return False
    from miles.ray.rollout.metrics import log_eval_skip

    log_eval_skip(rollout_id, args, EVAL_SKIP_REASON)
    return True


def rollout_log_metrics(samples: Sequence[Any], args: Any, search_stats: Optional[dict] = None) -> dict[str, float]:
    """The project's metric keys computed from Miles samples (rewards are our reward dicts)."""
    from searchr1.metrics import rollout_metrics

    settings = hook_settings(args)
    trajectories = [sample_trajectory(s) for s in samples]
    rewards = [sample_breakdown(s, settings.reward) for s in samples]
    golds = [golden_answers(s.label) for s in samples]
    metrics = rollout_metrics(trajectories, rewards, golds, search_stats, tools=list(settings.tools))
    metrics.update(rollout_health(trajectories, rewards, reward_groups(samples, rewards)))
    # Each failure logged its one line when it happened (engine or hook error); the step counts them.
    failed = [s for s in samples if (s.metadata or {}).get(METADATA_KEY, {}).get("status") == "failed"]
    metrics[FAILED_SAMPLES_KEY] = float(len(failed))
    return metrics


def reward_groups(samples: Sequence[Any], rewards: Sequence[RewardBreakdown]) -> list[list[float]]:
    """Each GRPO group's rewards, by ``Sample.group_index`` (a sample without one is its own group)."""
    groups: dict[Any, list[float]] = {}
    for i, (sample, breakdown) in enumerate(zip(samples, rewards)):
        index = getattr(sample, "group_index", None)
        groups.setdefault(("sample", i) if index is None else index, []).append(breakdown.total)
    return list(groups.values())


# --------------------------------------------------------------------------- training health
class HealthStopError(RuntimeError):
    """Raised from the rollout-log hook to end the Miles job after a health rule with action=stop."""


# One monitor per run for the life of the rollout process: change rates and patience span rollouts.
_MONITORS: dict[Path, HealthMonitor] = {}


def check_health(args: Any, rollout_id: int, metrics: dict[str, float]) -> dict[str, float]:
    """Run the health rules over a rollout's metrics: warn for each firing, request a stop for action=stop.
    Returns the change-rate and ``health/fired/<rule>`` metrics to log beside them."""
    settings = hook_settings(args)
    monitor = _MONITORS.setdefault(settings.metrics_path, HealthMonitor(settings.health))
    check = monitor.check(rollout_id, metrics)
    for firing in check.firings:
        warn(firing, alert=True)
    stops = [f for f in check.firings if f.action == "stop"]
    if stops:
        request_stop(args, settings.run_dir, stops[0].message())
    return check.metrics


def _stop_reason_of(args: Any) -> Optional[str]:
    try:
        return stop_reason(hook_settings(args).run_dir)
    except (RuntimeError, KeyError, TypeError, ValueError):  # args without usable settings: log_rollout reports it
        return None


def wandb_key(key: str) -> str:
    """Our key under a prefix Miles plots against ``rollout/step`` (``reward/x`` -> ``rollout/reward/x``)."""
    return key if key.startswith(MILES_STEP_PREFIXES) else f"rollout/{key}"


# One writer per metrics file for the life of the process: the rollout actor's args do not say where
# Miles resumed, so the first rollout this process logs decides which lines of an earlier run are kept.
_METRICS_WRITERS: dict[Path, MetricsWriter] = {}


def append_metrics(path: Path, step: int, metrics: dict[str, float]) -> None:
    """The run dir's metrics.jsonl, through the writer the local trainer uses too (reports read it)."""
    if path not in _METRICS_WRITERS:
        _METRICS_WRITERS[path] = MetricsWriter(path)
    _METRICS_WRITERS[path].append(step, metrics)


def _log_to_miles(args: Any, rollout_id: int, metrics: dict[str, float]) -> None:
    from miles.utils.metric_utils import compute_rollout_step
    from miles.utils.tracking_utils import tracking

    payload = {wandb_key(k): v for k, v in metrics.items()}
    payload["rollout/step"] = compute_rollout_step(args, rollout_id)
    tracking.log(args, payload, step_key="rollout/step")
