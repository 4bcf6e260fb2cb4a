"""Training health: leading indicators of a collapsing run, and the rules (``health.*``) that act on them.

Reward is a lagging indicator: a GRPO run that collapses first repeats itself inside ``<think>``, stops
exploring (entropy falls), drifts away from its engine (train/rollout mismatch), loses the learning
signal (every sample of a group scores the same) or balloons its responses; reward falls after. A
destructive update (a learning rate far too high) can break the policy in one step: only the update's
own KL (``health/update_kl``, embedded trainer) sees that before the next rollout does. Both
trainers log these indicators under ``health/*`` next to the shared rollout metrics, and both run the
same :class:`HealthMonitor` over each step's metrics. What a firing rule does (warn, stop, rollback)
is up to the trainer: the monitor only says which rules fired.

Indicators computed elsewhere and reused here: ``tis/effective_sample_size_fraction`` (searchr1.tis),
``rollout/truncated_fraction``, ``search_r1/invalid_action_rate``, ``search_r1/answer_rate``,
``rollout/response_len_mean`` (searchr1.metrics) and ``train/entropy`` (the local trainer's update).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from statistics import fmean
from typing import TYPE_CHECKING, Iterable, Mapping, Optional, Sequence

from searchr1.config.schema import HealthConfig
from searchr1.metrics_file import HEALTH_FIRED_PREFIX as FIRED_PREFIX
from searchr1.reward import RewardBreakdown
from searchr1.rollout.trajectory import Trajectory

if TYPE_CHECKING:  # torch is imported lazily: the core install has no torch
    from torch import Tensor

log = logging.getLogger(__name__)

THINK_NGRAM = 3
"""Word n-grams for think repetition: 3 words repeat rarely in real reasoning, constantly in a loop."""

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


# --------------------------------------------------------------------------- indicators
def rollout_health(
    trajectories: Sequence[Trajectory], rewards: Sequence[RewardBreakdown], groups: Sequence[Sequence[float]]
) -> dict[str, float]:
    """The rollout-side indicators of one batch; ``groups`` holds each GRPO group's rewards.

    ``health/correct_logprob`` is absent when no sample was an exact match.
    """
    if not trajectories:
        return {}
    texts = [t.response_text for t in trajectories]
    metrics = {
        "health/think_repetition": think_repetition(texts),
        "health/empty_think_rate": empty_think_rate(texts),
        "health/sampled_neg_logprob": sampled_neg_logprob(trajectories),
        "health/zero_variance_groups": zero_variance_groups(groups),
    }
    correct = correct_logprob(trajectories, rewards)
    if correct is not None:
        metrics["health/correct_logprob"] = correct
    return metrics


def think_texts(response: str) -> list[str]:
    return _THINK.findall(response)


def repeated_ngram_share(words: Sequence[str], n: int = THINK_NGRAM) -> Optional[float]:
    """Share of a word sequence's n-grams that repeat an earlier one; None with no n-gram at all."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return None
    return (len(grams) - len(set(grams))) / len(grams)


def think_repetition(responses: Sequence[str]) -> float:
    """Mean over responses of the repeated word-n-gram share of all their ``<think>`` text together
    (responses whose thinking is shorter than one n-gram do not count; none left: 0)."""
    shares = [repeated_ngram_share(" ".join(think_texts(r)).split()) for r in responses]
    known = [s for s in shares if s is not None]
    return fmean(known) if known else 0.0


def empty_think_rate(responses: Sequence[str]) -> float:
    """Share of responses with no word inside any ``<think>`` block (no block at all counts as empty)."""
    if not responses:
        return 0.0
    return sum(not "".join(think_texts(r)).strip() for r in responses) / len(responses)


def sampled_neg_logprob(trajectories: Sequence[Trajectory]) -> float:
    """Negative mean rollout logprob over every model token of the batch: a Monte-Carlo estimate of the
    sampling policy's entropy per token (the entropy proxy where the trainer does not compute entropy)."""
    values = [-lp for t in trajectories for lp, m in zip(t.rollout_logprobs, t.loss_mask) if m]
    return fmean(values) if values else 0.0


def zero_variance_groups(groups: Sequence[Sequence[float]]) -> float:
    """Share of GRPO groups whose rewards are all equal: their advantages are 0, they teach nothing."""
    if not groups:
        return 0.0
    return sum(max(g) == min(g) for g in groups) / len(groups)


def contiguous_groups(values: Sequence[float], group_size: int) -> list[list[float]]:
    """Groups as both trainers lay them out: each prompt's samples next to each other."""
    return [list(values[i : i + group_size]) for i in range(0, len(values), group_size)]


def correct_logprob(trajectories: Sequence[Trajectory], rewards: Sequence[RewardBreakdown]) -> Optional[float]:
    """Mean rollout logprob of the model tokens of exact-match samples; None without any."""
    values = [
        lp
        for t, r in zip(trajectories, rewards)
        if r.exact_match >= 1.0
        for lp, m in zip(t.rollout_logprobs, t.loss_mask)
        if m
    ]
    return fmean(values) if values else None


def mismatch_metrics(
    train_log_probs: list["Tensor"], rollout_log_probs: list["Tensor"], loss_masks: list["Tensor"]
) -> dict[str, float]:
    """Trainer vs engine on the sampled model tokens: mean |log pi_train - log pi_rollout| and the k3
    estimate of KL(pi_rollout || pi_train) (tokens were sampled from the rollout policy), per token."""
    abs_mean, kl = _log_ratio_stats(train_log_probs, rollout_log_probs, loss_masks)
    return {"health/mismatch_abs_logprob": abs_mean, "health/mismatch_k3_kl": kl}


def update_kl(
    before_log_probs: list["Tensor"], after_log_probs: list["Tensor"], loss_masks: list["Tensor"]
) -> dict[str, float]:
    """How far one optimizer step moved the policy on the step's own samples: the k3 estimate of
    KL(pi_before || pi_after) per model token (the samples came from the policy before the step).

    The only indicator that reads the weights *after* the update: a destructive step shows here at once,
    while the rollout-side indicators (and reward) show it one step later, on the next rollout."""
    _, kl = _log_ratio_stats(after_log_probs, before_log_probs, loss_masks)
    return {"health/update_kl": kl}


def _log_ratio_stats(
    log_probs: list["Tensor"], sampled_log_probs: list["Tensor"], loss_masks: list["Tensor"]
) -> tuple[float, float]:
    """Per model token: mean |r| and mean k3 = e^r - 1 - r, with r = log_probs - sampled_log_probs
    (k3 estimates KL(sampling policy || other policy) on tokens drawn from the sampling policy)."""
    abs_sum = kl_sum = tokens = 0.0
    for other, sampled, mask in zip(log_probs, sampled_log_probs, loss_masks):
        mask = mask.float()
        log_ratio = (other.detach().float() - sampled.detach().float()) * mask
        abs_sum += float((log_ratio.abs() * mask).sum())
        kl_sum += float(((log_ratio.exp() - 1 - log_ratio) * mask).sum())
        tokens += float(mask.sum())
    if not tokens:
        return 0.0, 0.0
    return abs_sum / tokens, kl_sum / tokens


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """Which indicator a ``health.<name>`` rule watches, in which direction, and the remedy to print."""

    name: str
    keys: tuple[str, ...]
    """The indicator's metric keys, first present wins (a trainer-computed value before its proxy)."""
    below: bool
    """True: fires under the threshold; False: over it."""
    remedy: str
    absolute: bool = False
    """Compare the indicator's absolute value (a change rate that must not swing either way)."""
    after_update: bool = False
    """The indicator judges the weights the step's update produced, not the weights the step started from."""
    relative: bool = False
    """The threshold is a fraction of the indicator's value at the run's first step (the run's own baseline), not
    a value: what is healthy depends on the model and its warm start (a distilled warm start samples at
    0.03-0.08 nats/token from its first step, a cold policy at several)."""


RULES: tuple[Rule, ...] = (
    Rule(
        "ess_fraction",
        ("tis/effective_sample_size_fraction",),
        True,
        "lower the learning rate or shorten rollout.max_turns (the seed's advice); tis=on corrects what remains",
    ),
    Rule(
        "mismatch_kl",
        ("health/mismatch_k3_kl",),
        False,
        "the trainer and the engine disagree: turn tis=on, or run the engine in float32 (trainer.engine_dtype)",
    ),
    Rule(
        "update_kl",
        ("health/update_kl",),
        False,
        "one update moved the policy far from where it sampled: lower trainer.lr (or trainer.grad_clip); roll back",
        after_update=True,
    ),
    Rule(
        "zero_variance_groups",
        ("health/zero_variance_groups",),
        False,
        "most groups carry no learning signal: raise rollout.n_samples_per_prompt or use prompts of mixed difficulty",
    ),
    Rule(
        "entropy",
        ("train/entropy", "health/sampled_neg_logprob"),
        True,
        "the policy stopped exploring: lower the learning rate or raise grpo.entropy_coef",
        relative=True,
    ),
    Rule(
        "think_repetition",
        ("health/think_repetition",),
        False,
        "<think> degenerates into repetition: lower the learning rate; roll back to an earlier checkpoint",
    ),
    Rule(
        "empty_think",
        ("health/empty_think_rate",),
        False,
        "the policy dropped its reasoning: check reward.* format credit, lower the learning rate",
    ),
    Rule(
        "response_len_change",
        ("health/response_len_change",),
        False,
        "responses balloon or shrink: lower the learning rate; check rollout.max_response_len",
        absolute=True,
    ),
    Rule(
        "truncation",
        ("rollout/truncated_fraction",),
        False,
        "most responses hit the length limit: lower the learning rate or raise rollout.max_response_len",
    ),
    Rule(
        "invalid_actions",
        ("search_r1/invalid_action_rate",),
        False,
        "the action format is breaking down: lower the learning rate; check reward.* format credit",
    ),
    Rule(
        "answer_rate",
        ("search_r1/answer_rate",),
        True,
        "fewer samples reach an <answer>: lower the learning rate or raise rollout.max_turns",
    ),
    Rule(
        "correct_logprob_drop",
        ("health/correct_logprob_change",),
        True,
        "correct answers are getting less likely: lower the learning rate; roll back",
    ),
    Rule(
        "observation_fraction",
        ("loss_mask/observation_fraction",),
        False,
        "retrieved text fills most of each response, so the policy barely trains on its own tokens: lower "
        "search.topk, shorten passages (rollout.max_obs_tokens) or allow fewer turns (rollout.max_turns)",
    ),
)


@dataclass(frozen=True)
class Firing:
    """A rule that fired at a step, with what it saw and what the config says to do."""

    rule: Rule
    step: int
    key: str
    """The metric the rule read."""
    value: float
    threshold: float
    action: str
    baseline: Optional[float] = None
    """A relative rule's baseline (the indicator at the run's first step); its limit is threshold x baseline."""

    def message(self) -> str:
        side = "<" if self.rule.below else ">"
        shown = f"|{self.key}|" if self.rule.absolute else self.key
        limit = f"{self.threshold:g}"
        if self.baseline is not None:
            limit = f"{self.threshold * self.baseline:.4g} ({self.threshold:g} x its first step's {self.baseline:.4g})"
        return (
            f"health: rule {self.rule.name} fired at step {self.step}: {shown}={self.value:.4g} {side} "
            f"{limit} (health.{self.rule.name}.action={self.action}); remedy: {self.rule.remedy}"
        )


@dataclass
class HealthCheck:
    """What one step's metrics said: change-rate and firing metrics to log, and the rules that fired."""

    metrics: dict[str, float]
    firings: list[Firing]
    breached: list[str]
    """The rules (not off) whose indicator was past its threshold at this step, fired or not (patience)."""

    def actions(self) -> set[str]:
        return {f.action for f in self.firings}


@dataclass
class HealthMonitor:
    """Runs the rules over each step's metrics; remembers last values (change rates) and breach streaks."""

    cfg: HealthConfig
    _last: dict[str, float] = field(default_factory=dict)
    _streaks: dict[str, int] = field(default_factory=dict)
    _baselines: dict[str, float] = field(default_factory=dict)
    """Relative rules: the indicator's value at the first step that logged it."""

    def check(self, step: int, metrics: Mapping[str, float]) -> HealthCheck:
        extra = self._change_rates(metrics)
        seen = {**metrics, **extra}
        firings: list[Firing] = []
        breached_rules: list[str] = []
        for rule in RULES:
            rule_cfg = self.cfg.rules()[rule.name]
            found = _indicator(rule, seen)
            if rule_cfg.action == "off" or found is None:
                continue
            key, value = found
            baseline = self._baselines.setdefault(rule.name, value) if rule.relative else None
            limit = rule_cfg.threshold * (1.0 if baseline is None else baseline)
            compared = abs(value) if rule.absolute else value
            breached = compared < limit if rule.below else compared > limit
            self._streaks[rule.name] = self._streaks.get(rule.name, 0) + 1 if breached else 0
            if not breached:
                continue
            breached_rules.append(rule.name)
            if self.cfg.enabled and self._streaks[rule.name] % (rule_cfg.patience or self.cfg.patience) == 0:
                firings.append(Firing(rule, step, key, value, rule_cfg.threshold, rule_cfg.action, baseline))
                extra[FIRED_PREFIX + rule.name] = 1.0
        return HealthCheck(metrics=extra, firings=firings, breached=breached_rules)

    def reset(self) -> None:
        """After a rollback, the breach streaks and the last values (change rates) belong to discarded steps;
        the baselines are the run's start and stay."""
        self._streaks.clear()
        self._last.clear()

    def remember_baselines(self, history: Iterable[Mapping[str, float]]) -> None:
        """Take the relative rules' baselines from steps already logged (a resumed run's metrics.jsonl)."""
        for metrics in history:
            for rule in RULES:
                found = _indicator(rule, metrics) if rule.relative else None
                if found is not None:
                    self._baselines.setdefault(rule.name, found[1])

    def _change_rates(self, metrics: Mapping[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        length = metrics.get("rollout/response_len_mean")
        if length is not None:
            last = self._last.get("length")
            if last:
                out["health/response_len_change"] = (length - last) / last
            self._last["length"] = length
        correct = metrics.get("health/correct_logprob")
        if correct is not None:  # steps without a correct sample keep the last known value
            last = self._last.get("correct")
            if last is not None:
                out["health/correct_logprob_change"] = correct - last
            self._last["correct"] = correct
        return out


def _indicator(rule: Rule, metrics: Mapping[str, float]) -> Optional[tuple[str, float]]:
    for key in rule.keys:
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            return key, float(value)
    return None


def warn(firing: Firing, *, alert: bool) -> None:
    """The warn action (every firing logs it): one log line, and a W&B alert when ``alert`` (online runs)."""
    log.warning(firing.message())
    if not alert:
        return
    import wandb

    run = wandb.run
    if run is not None and not run.offline:
        run.alert(title=f"searchr1 health: {firing.rule.name}", text=firing.message(), level="WARN")
