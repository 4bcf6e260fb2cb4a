"""The embedded trainer's health actions: warn, stop, or roll back to the last healthy weights.

:class:`searchr1.health.HealthMonitor` says which ``health.*`` rules fired on a step's metrics; this module
decides what the run does about it. A step's rollout (and the update's entropy, ESS and mismatch, all
computed on the pre-update logprobs) describe the weights the step *started* from, so those weights are
what a healthy step (no stop or rollback rule past its threshold) vouches for: the guard keeps an in-memory copy of them (trainable weights and
optimizer moments), and a rollback restores the newest such copy (the starting weights until a step
was healthy) and lowers the learning rate by ``health.rollback_lr_factor``. The update KL alone judges
the weights after the update: its breach leaves the step's starting weights vouched for.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from searchr1.config.schema import HealthConfig
from searchr1.health import RULES, HealthMonitor, warn

log = logging.getLogger(__name__)

Verdict = Literal["continue", "stop", "rollback"]
ACTING = ("stop", "rollback")
"""Rules with these actions judge whether a step was healthy; warn-only rules (say, zero-variance groups
early in a sparse-reward run) would otherwise keep a rollback at the starting weights forever."""
AFTER_UPDATE = frozenset(rule.name for rule in RULES if rule.after_update)
"""Rules that judge the weights a step's update produced (update KL): their breach does not make the
weights the step started from unhealthy, so a rollback they cause returns to exactly those weights."""


@dataclass(frozen=True)
class Snapshot:
    """Trainable weights and optimizer state at one point of the run, kept in memory."""

    step: int
    """The step these weights started (their rollout was that step's)."""
    weights: dict[str, torch.Tensor]
    optimizer: dict


def snapshot(step: int, policy: Any, optimizer: torch.optim.Optimizer) -> Snapshot:
    weights = {name: p.detach().clone() for name, p in policy.named_parameters() if p.requires_grad}
    return Snapshot(step, weights, copy.deepcopy(optimizer.state_dict()))


@dataclass
class HealthGuard:
    """Runs the monitor after each step and carries out warn / stop / rollback."""

    cfg: HealthConfig
    policy: Any
    optimizer: torch.optim.Optimizer
    alert: bool
    """Send a W&B alert with each warning (logger.mode=online)."""
    start_step: int = 0
    monitor: HealthMonitor = field(init=False)
    rollbacks: int = 0
    _keeps_snapshots: bool = field(init=False)
    _base_lrs: list[float] = field(init=False)
    _healthy: Snapshot | None = field(init=False, default=None)
    _current: Snapshot | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.monitor = HealthMonitor(self.cfg)
        self._base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self._keeps_snapshots = any(rule.action == "rollback" for rule in self.cfg.rules().values())
        if self._keeps_snapshots:  # the starting weights: where a rollback goes before any healthy step
            self._current = self._healthy = snapshot(self.start_step + 1, self.policy, self.optimizer)

    def review(self, step: int, metrics: dict[str, float]) -> Verdict:
        """Check this step's metrics (adding health/* change rates and firings to them) and act.

        Call after the step's update; the caller stops (after a checkpoint) or, on rollback, syncs the
        engine with the restored weights."""
        check = self.monitor.check(step, metrics)
        metrics.update(check.metrics)
        for firing in check.firings:
            warn(firing, alert=self.alert)
        if self._keeps_snapshots:
            if not any(self.cfg.rules()[name].action in ACTING for name in check.breached if name not in AFTER_UPDATE):
                self._healthy = self._current
            self._current = snapshot(step + 1, self.policy, self.optimizer)
        verdict = _verdict(check.actions())
        if verdict == "rollback" and self.rollbacks >= self.cfg.max_rollbacks:
            log.warning(
                "health: %d rollbacks done (health.max_rollbacks=%d): stopping instead",
                self.rollbacks,
                self.cfg.max_rollbacks,
            )
            verdict = "stop"
        if verdict == "rollback":
            self._rollback(step)
        metrics["health/rollbacks"] = float(self.rollbacks)
        metrics["health/lr_scale"] = self.cfg.rollback_lr_factor**self.rollbacks
        return verdict

    def _rollback(self, step: int) -> None:
        assert self._healthy is not None  # rollback rules keep snapshots from the start
        target = self._healthy
        params = dict(self.policy.named_parameters())
        with torch.no_grad():
            for name, value in target.weights.items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(copy.deepcopy(target.optimizer))
        self.rollbacks += 1
        scale = self.cfg.rollback_lr_factor**self.rollbacks
        for group, base in zip(self.optimizer.param_groups, self._base_lrs):
            group["lr"] = base * scale
        self.monitor.reset()
        self._current = target
        log.warning(
            "health: rolled back at step %d to the weights step %d started from; lr x %g "
            "(health.rollback_lr_factor=%g, rollback %d of health.max_rollbacks=%d)",
            step,
            target.step,
            scale,
            self.cfg.rollback_lr_factor,
            self.rollbacks,
            self.cfg.max_rollbacks,
        )


def _verdict(actions: set[str]) -> Verdict:
    """The strongest action of the rules that fired: stop, then rollback; warn only logs."""
    if "stop" in actions:
        return "stop"
    if "rollback" in actions:
        return "rollback"
    return "continue"
