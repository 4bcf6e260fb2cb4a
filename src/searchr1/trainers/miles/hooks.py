"""Functions Miles loads by dotted path: our rollout, reward, TIS and rollout metrics inside Miles.

- ``generate`` (``--custom-generate-function-path``): the new form Miles' class-based rollout calls,
  ``async (GenerateFnInput) -> GenerateFnOutput``; ``generate_legacy`` is the ``(args, sample,
  sampling_params)`` form. Both run :func:`searchr1.rollout.loop.run_trajectory` against SGLang's
  ``/generate`` at Miles' router and fill Miles' ``Sample``.
- ``reward`` (``--custom-rm-path``, also under ``--group-rm``): our reward, as a dict (``--reward-key total``).
- ``tis_weights`` (``--custom-tis-function-path``): :func:`searchr1.tis.compute_tis` with the signature of
  Miles' ``mis.compute_mis_weights_with_cp``.
- ``log_rollout`` (``--custom-rollout-log-function-path``): our rollout metrics, next to Miles' own, and the
  training-health rules (``health.*``) over them: ``stop`` writes ``<run dir>/health_stop``, which the hooks
  honour (see :func:`request_stop`).

Miles is imported lazily, inside the hooks, so this module imports without Miles (tests, CPU installs).
Invariants Miles relies on but does not check are enforced here: see :func:`check_sample`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import aiohttp

from searchr1.config.schema import RewardConfig, RolloutConfig
from searchr1.reward import RewardBreakdown, score_response
from searchr1.rollout.loop import run_trajectory
from searchr1.engines.base import EngineOutput, SamplingParams
from searchr1.engines.sglang import SGLangEngine
from searchr1.health import HealthMonitor, mismatch_metrics, rollout_health, warn
from searchr1.metrics_file import MetricsWriter
from searchr1.rollout.tokens import SegmentEncoder, prompt_ids
from searchr1.rollout.trajectory import Trajectory
from searchr1.tools.base import ToolCall, ToolContext
from searchr1.tools.toolbox import Toolbox, open_toolbox
from searchr1.trainers.miles.custom_config import HookSettings, tis_config_from_args
from searchr1.tis import ESS_FRACTION_KEY, ESS_KEY, compute_tis

log = logging.getLogger(__name__)

METADATA_KEY = "searchr1"
"""Our per-sample counts live under this key of ``Sample.metadata`` (Miles ships only raw_reward/round_number)."""
HEALTH_STOP_FILE = "health_stop"
"""In the run dir: a health rule with action=stop fired (the file says which); the hooks end the run."""
FAILED_SAMPLES_KEY = "rollout/failed_samples"
"""Samples of a rollout step that failed (engine error on any turn, or a hook error), each logged once."""
EVAL_SKIP_REASON = "health_stop"
"""Miles logs an eval skipped after a health stop as ``eval/skipped_health_stop``."""
# Miles binds these W&B prefixes to a step metric; anything else would plot against W&B's _step.
MILES_STEP_PREFIXES = ("rollout/", "train/", "eval/", "perf/", "multi_turn/", "passrate/")


class SampleInvariantError(ValueError):
    """A filled Sample that Miles would mis-train on (misaligned masks/logprobs/tokens)."""


# --------------------------------------------------------------------------- per-process runtime
@dataclass
class _Runtime:
    """The HTTP session, engine client and tool clients of one rollout process and event loop."""

    settings: HookSettings
    session: aiohttp.ClientSession
    engine: SGLangEngine
    tools: Toolbox
    encoders: dict[int, SegmentEncoder]

    def encoder(self, tokenizer: Any) -> SegmentEncoder:
        return self.encoders.setdefault(id(tokenizer), SegmentEncoder(tokenizer))


# Miles calls hooks as bare functions, so their connections are cached per process. aiohttp sessions
# belong to the loop that made them: one runtime per (running loop, args object).
_RUNTIMES: dict[tuple[int, int], _Runtime] = {}
_SETTINGS: dict[int, HookSettings] = {}


def hook_settings(args: Any) -> HookSettings:
    """``args.searchr1`` typed once per args object (range checks re-run on the worker)."""
    key = id(args)
    if key not in _SETTINGS:
        _SETTINGS[key] = HookSettings.from_args(args)
    return _SETTINGS[key]


def router_url(args: Any) -> str:
    return f"http://{args.sglang_router_ip}:{args.sglang_router_port}"


async def _runtime(args: Any, tokenizer: Any) -> _Runtime:
    key = (id(asyncio.get_running_loop()), id(args))
    runtime = _RUNTIMES.get(key)
    if runtime is not None and not runtime.session.closed:
        return runtime
    settings = hook_settings(args)
    session = aiohttp.ClientSession()
    tools = open_toolbox(
        settings.tools,
        ToolContext(session, run_dir=settings.run_dir, backend=settings.backend),
        action_format=settings.rollout.action_format,
        tokenizer=tokenizer,
    )
    runtime = _Runtime(settings, session, SGLangEngine(router_url(args), session), tools, {})
    _RUNTIMES[key] = runtime
    log.info(
        "searchr1 rollout: engine %s, tools %s, search backend %s",
        router_url(args),
        ", ".join(settings.tools),
        settings.backend.name,
    )
    return runtime


async def close_runtimes() -> None:
    """Close every cached session and tool client (tests; Miles ends the process instead)."""
    for runtime in list(_RUNTIMES.values()):
        await runtime.tools.close()
        await runtime.session.close()
    _RUNTIMES.clear()
    _SETTINGS.clear()


# --------------------------------------------------------------------------- generate
async def generate(input: Any) -> Any:
    """New-form generate function (``GenerateFnInput -> GenerateFnOutput``)."""
    from miles.rollout.base_types import GenerateFnOutput

    state = input.state
    sample = await generate_sample(
        input.args,
        input.sample,
        state.tokenizer,
        sampling_params=input.sampling_params,
        engine_aborted=lambda: bool(getattr(state, "aborted", False)),
    )
    return GenerateFnOutput(samples=sample)


async def generate_legacy(args: Any, sample: Any, sampling_params: dict, evaluation: bool = False) -> Any:
    """Legacy form (``MILES_USE_LEGACY_ROLLOUT_V1=1``): ``(args, sample, sampling_params) -> Sample``."""
    from miles.rollout.sglang_rollout import GenerateState

    state = GenerateState(args)  # the legacy path's singleton: already built, holds the tokenizer
    return await generate_sample(
        args,
        sample,
        state.tokenizer,
        sampling_params=sampling_params,
        engine_aborted=lambda: bool(getattr(state, "aborted", False)),
    )


async def generate_sample(
    args: Any,
    sample: Any,
    tokenizer: Any,
    *,
    sampling_params: Optional[Mapping] = None,
    engine_aborted: Callable[[], bool] = lambda: False,
) -> Any:
    """Roll out one Miles sample with our loop and fill it in place. Never raises: Miles would
    silently drop the sample's whole group, so a failure becomes a FAILED sample that trains as a
    zero-reward, fully masked response instead."""
    ids: list[int] = []
    try:
        runtime = await _runtime(args, tokenizer)
        settings = runtime.settings
        ids = sample_prompt_ids(sample.prompt, tokenizer, runtime.tools.template_tools)
        if stop_reason(settings.run_dir) is not None:  # the run is ending: generate nothing
            fail_sample(sample, ids, eos_token(tokenizer), "a health rule stopped the run")
            return sample
        engine = EngineMetaRecorder(runtime.engine)
        traj = await run_trajectory(
            ids,
            engine=engine,
            tools=runtime.tools,
            tokenizer=tokenizer,
            rollout_cfg=rollout_config(settings.rollout, sampling_params),
            encoder=runtime.encoder(tokenizer),
        )
        if not traj.response_ids:  # Miles ended the rollout first (it discards the group), or the engine
            # failed on the first turn: its client logged why in one line, as on any later turn
            aborted = engine_aborted()
            reason = (
                "aborted by Miles before any token" if aborted else f"the engine returned no tokens ({traj.status})"
            )
            fail_sample(sample, ids, eos_token(tokenizer), reason, aborted=aborted)
            return sample
        fill_sample(sample, traj, engine_aborted=engine_aborted(), filler_token=eos_token(tokenizer))
        keep_engine_meta(sample, args, engine.meta_infos)
        check_sample(sample, len(ids))
    except Exception as exc:  # see the docstring: an escaping error loses the group
        log.exception("searchr1 generate failed for sample %s; returning it as FAILED", getattr(sample, "index", None))
        fail_sample(sample, ids, eos_token(tokenizer), f"{type(exc).__name__}: {exc}")
    return sample


class EngineMetaRecorder:
    """The engine of one trajectory: SGLang's answers, with each call's meta_info kept for the Sample."""

    def __init__(self, engine: SGLangEngine) -> None:
        self._engine = engine
        self.meta_infos: list[dict] = []

    async def generate(self, input_ids: Sequence[int], params: SamplingParams) -> EngineOutput:
        output, meta = await self._engine.generate_with_meta(input_ids, params)
        if meta:
            self.meta_infos.append(meta)
        return output


def keep_engine_meta(sample: Any, args: Any, meta_infos: list[dict]) -> None:
    """What Miles' own generate keeps from each SGLang answer (prefix-cache counts, weight versions,
    speculative-decoding counts), through Miles' ``Sample.update_from_meta_info``, so its
    ``rollout/prefix_cache_hit_rate`` and ``weight_version`` metrics see our turns. That method also
    sets a status from the last finish reason: ours (which knows about searches) is kept."""
    update = getattr(sample, "update_from_meta_info", None)
    if update is None:
        return
    status = sample.status
    for meta in meta_infos:
        update(args, meta)
    sample.status = status


def eos_token(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    return 0 if eos is None else int(eos)


def sample_prompt_ids(prompt: Any, tokenizer: Any, template_tools: Optional[list[dict[str, Any]]] = None) -> list[int]:
    """Miles hands a chat-templated string (``--apply-chat-template``) or the raw message list; with
    rollout.action_format=tool_calls the list (rendered here with the tools' schemas in the template's
    tools section, so searchr1 does not pass --apply-chat-template then)."""
    if isinstance(prompt, str):
        if template_tools:
            raise SampleInvariantError(
                "rollout.action_format=tool_calls needs the prompt as messages (a run without --apply-chat-template)"
            )
        return list(tokenizer.encode(prompt, add_special_tokens=False))
    return prompt_ids(tokenizer, prompt, template_tools)


def rollout_config(base: RolloutConfig, sampling_params: Optional[Mapping]) -> RolloutConfig:
    """Temperature and top-p as Miles asks (training: --rollout-*, evaluation: --eval-*)."""
    if not sampling_params:
        return base
    return dataclasses.replace(
        base,
        temperature=float(sampling_params.get("temperature", base.temperature)),
        top_p=float(sampling_params.get("top_p", base.top_p)),
    )


def fill_sample(sample: Any, traj: Trajectory, *, engine_aborted: bool, filler_token: int = 0) -> None:
    """Our trajectory into Miles' fields. A FAILED trajectory (the engine failed mid-way) keeps none of
    its partial response: Miles would train those tokens with the group's advantage of a 0 reward."""
    status = type(sample).Status
    if _status(traj.status, engine_aborted, status) is status.FAILED:
        reason = f"the engine failed after {len(traj.response_ids)} response tokens ({traj.turns} turns)"
        fail_sample(sample, traj.prompt_ids, filler_token, reason, counts=trajectory_counts(traj))
        return
    sample.tokens = list(traj.prompt_ids) + list(traj.response_ids)
    sample.response = traj.response_text
    sample.response_length = len(traj.response_ids)
    sample.loss_mask = [int(m) for m in traj.loss_mask]
    sample.rollout_log_probs = [float(lp) for lp in traj.rollout_logprobs]
    sample.status = _status(traj.status, engine_aborted, status)
    sample.non_generation_time = traj.tool_seconds  # keeps Miles' tokens/s honest about tool time
    sample.metadata = {**(sample.metadata or {}), METADATA_KEY: trajectory_counts(traj)}


def _status(ours: str, engine_aborted: bool, status: Any) -> Any:
    if ours == "completed":
        return status.COMPLETED
    if ours == "truncated":
        return status.TRUNCATED
    # ABORTED only when Miles aborted the rollout: an aborted sample gets no reward, and a sample
    # without a reward in a training group crashes Miles. An engine/HTTP failure is FAILED instead.
    return status.ABORTED if engine_aborted else status.FAILED


def trajectory_counts(traj: Trajectory) -> dict[str, Any]:
    return {
        "turns": traj.turns,
        "search_calls": traj.search_calls,
        "tool_calls": [call.record() for call in traj.tool_calls],
        "observation_tokens": traj.observation_tokens,
        "invalid_actions": traj.invalid_actions,
        "final_answer": traj.final_answer,
        "status": traj.status,
        "tool_seconds": traj.tool_seconds,
    }


def fail_sample(
    sample: Any,
    prompt: Sequence[int],
    filler_token: int,
    reason: str,
    *,
    aborted: bool = False,
    counts: Optional[dict[str, Any]] = None,
) -> None:
    """One masked filler (EOS) token: a valid, zero-length-in-effect response Miles can score (reward 0:
    the response is empty) and train past. ``counts`` keeps what the trajectory did before it failed."""
    sample.tokens = list(prompt) + [filler_token]
    sample.response = ""
    sample.response_length = 1
    sample.loss_mask = [0]
    sample.rollout_log_probs = [0.0]
    sample.status = type(sample).Status.ABORTED if aborted else type(sample).Status.FAILED
    sample.non_generation_time = float((counts or {}).get("tool_seconds", 0.0))
    status = "aborted" if aborted else "failed"
    sample.metadata = {**(sample.metadata or {}), METADATA_KEY: {**(counts or {}), "error": reason, "status": status}}


def check_sample(sample: Any, prompt_len: int) -> None:
    """What Miles needs and never checks on the generate path (Sample.validate() is not called)."""
    n = sample.response_length
    if not (len(sample.loss_mask) == len(sample.rollout_log_probs) == n):
        raise SampleInvariantError(
            f"loss_mask ({len(sample.loss_mask)}), rollout_log_probs ({len(sample.rollout_log_probs)}) and "
            f"response_length ({n}) differ"
        )
    if len(sample.tokens) != prompt_len + n:
        raise SampleInvariantError(f"tokens ({len(sample.tokens)}) != prompt ({prompt_len}) + response ({n})")
    if any(lp != 0.0 for lp, m in zip(sample.rollout_log_probs, sample.loss_mask) if not m):
        raise SampleInvariantError("an observation token carries a non-zero rollout logprob")


# --------------------------------------------------------------------------- reward
async def reward(args: Any, samples: Any, **kwargs: Any) -> Any:
    """One sample -> one reward dict; a list (``--group-rm``, or list outputs) -> a list, in order."""
    cfg = hook_settings(args).reward
    if isinstance(samples, list):
        return [score_sample(s, cfg) for s in samples]
    return score_sample(samples, cfg)


def score_sample(sample: Any, cfg: RewardConfig) -> dict[str, float]:
    prompt_text = sample.prompt if isinstance(sample.prompt, str) else ""
    breakdown = score_response(
        sample.response, golden_answers(sample.label), cfg, prompt_text=prompt_text, tool_calls=tool_call_count(sample)
    )
    return reward_dict(breakdown)


def tool_call_count(sample: Any) -> Optional[int]:
    """The sample's well-formed tool calls, as our generate hook recorded them; None for a sample it never
    filled (the reward then refuses a tool term rather than guess)."""
    counts = (sample.metadata or {}).get(METADATA_KEY)
    return None if counts is None else len(counts.get("tool_calls", []))


def reward_dict(breakdown: RewardBreakdown) -> dict[str, float]:
    """The components Miles keeps in Sample.reward; ``tool`` and ``f1`` only where the config has them."""
    optional = {key: value for key, value in (("tool", breakdown.tool), ("f1", breakdown.f1)) if value is not None}
    return {"total": breakdown.total, "exact_match": breakdown.exact_match, "format": breakdown.format, **optional}


def golden_answers(label: Any) -> list[str]:
    """Search-R1's ``reward_model`` label (``{"ground_truth": {"target": [...]}}``), a list or a string."""
    if isinstance(label, Mapping):
        target = label.get("ground_truth", label)
        target = target.get("target", []) if isinstance(target, Mapping) else target
        return golden_answers(target)
    if isinstance(label, str):
        return [label]
    return [str(a) for a in (label or [])]


# --------------------------------------------------------------------------- TIS
def tis_weights(
    args: Any,
    *,
    pg_loss: Any,
    train_log_probs: list,
    rollout_log_probs: list,
    loss_masks: list,
    total_lengths: list[int],
    response_lengths: list[int],
    **kwargs: Any,
) -> tuple[Any, list, dict]:
    """Miles' TIS hook contract (as ``mis.compute_mis_weights_with_cp``): returns the weighted per-token
    ``pg_loss``, the loss masks after rejection, and per-token metric tensors Miles logs as ``train/<key>``."""
    import torch

    cfg = tis_config_from_args(args)
    cp = _ContextParallel(args, total_lengths, response_lengths, kwargs.get("max_seq_lens"))
    train, rollout = cp.gather(train_log_probs), cp.gather(rollout_log_probs)
    result = compute_tis(train, rollout, loss_masks, cfg)
    if cfg.enabled:
        pg_loss = pg_loss * cp.local(result.weights).to(pg_loss.dtype)
    local_lengths = [int(t.numel()) for t in train_log_probs]
    scale = masked_share_correction(loss_masks, per_token=bool(getattr(args, "calculate_per_token_loss", False)))
    metrics = {
        key: torch.cat([torch.full((n,), float(value) * scale, device=pg_loss.device) for n in local_lengths])
        for key, value in miles_tis_metrics(
            {**result.metrics, **mismatch_metrics(train, rollout, loss_masks)}, args
        ).items()
    }
    return pg_loss, result.masks, metrics


def miles_tis_metrics(metrics: dict[str, float], args: Any) -> dict[str, float]:
    """Miles averages hook metrics over samples and micro-batches, so the ESS is reported as the
    micro-batch fraction times the optimizer batch (in samples); the fraction itself is unchanged."""
    out = dict(metrics)
    out[ESS_KEY] = metrics[ESS_FRACTION_KEY] * float(getattr(args, "global_batch_size", 1) or 1)
    return out


def masked_share_correction(loss_masks: list, *, per_token: bool) -> float:
    """Undo the weight Miles' metric reduction gives fully masked samples.

    Miles reduces a hook metric as a masked mean per sample (a per-token sum with
    ``--calculate-per-token-loss``) and divides by the step's sample (token) count, in which a fully
    masked sample (a FAILED one) counts 1 but contributes 0: our statistics of the live samples would
    read live/N of their value. Scaling by count/live makes the micro-batch report its own value.
    A micro-batch with no trainable token at all still reads 0 (no weights exist to report)."""
    sums = [float(m.sum()) for m in loss_masks]
    if per_token:
        live, count = sum(sums), sum(max(s, 1.0) for s in sums)
    else:
        live, count = sum(1.0 for s in sums if s > 0), float(len(sums))
    return count / live if live else 0.0


@dataclass
class _ContextParallel:
    """Whole-sequence views of context-parallel slices (identity without CP), as mis.py does."""

    args: Any
    total_lengths: list[int]
    response_lengths: list[int]
    max_seq_lens: Optional[list[int]]

    @property
    def enabled(self) -> bool:
        return int(getattr(self.args, "context_parallel_size", 1) or 1) > 1

    def gather(self, values: list) -> list:
        if not self.enabled:
            return list(values)
        from miles.backends.training_utils.cp_utils import all_gather_with_cp

        return [
            all_gather_with_cp(
                v, self.total_lengths[i], self.response_lengths[i], self.args.qkv_format, self._max_len(i)
            )
            for i, v in enumerate(values)
        ]

    def local(self, values: list) -> Any:
        import torch

        if not self.enabled:
            return torch.cat(values)
        from miles.backends.training_utils.cp_utils import slice_log_prob_with_cp

        return torch.cat(
            [
                slice_log_prob_with_cp(
                    v, self.total_lengths[i], self.response_lengths[i], self.args.qkv_format, self._max_len(i)
                )
                for i, v in enumerate(values)
            ]
        )

    def _max_len(self, i: int) -> Optional[int]:
        return self.max_seq_lens[i] if self.max_seq_lens is not None else None


# --------------------------------------------------------------------------- rollout metrics
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
    rewards = [_breakdown(s, settings.reward) for s in samples]
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


def request_stop(args: Any, run_dir: Path, reason: str) -> None:
    """End the run after this rollout's training step, with a checkpoint when Miles saves (--save).

    Miles gives a hook no way to end its loop, so: ``<run dir>/health_stop`` makes every later generate
    call return at once, and the next rollout-log call raises :class:`HealthStopError`, which ends the job
    before that rollout trains. With ``--save-trigger-sentinel PATH`` the hook also creates PATH, and
    Miles saves a checkpoint right after this rollout's step; otherwise the last --save-interval
    checkpoint is the one to resume from."""
    (run_dir / HEALTH_STOP_FILE).write_text(reason + "\n")
    sentinel = getattr(args, "save_trigger_sentinel", None)
    if sentinel:
        Path(sentinel).touch()
    log.warning(
        "health: stopping the Miles run after this rollout's step (%s)%s",
        run_dir / HEALTH_STOP_FILE,
        f"; Miles saves a checkpoint first ({sentinel})" if sentinel else "",
    )


def stop_reason(run_dir: Path) -> Optional[str]:
    path = run_dir / HEALTH_STOP_FILE
    return path.read_text().strip() if path.exists() else None


def clear_stop(run_dir: Path) -> Optional[str]:
    """Remove the stop file an earlier launch left in the run dir (a resumed or reused run dir): a new
    launch starts unstopped. Returns the old file's reason, None when there was none."""
    reason = stop_reason(run_dir)
    if reason is not None:
        (run_dir / HEALTH_STOP_FILE).unlink(missing_ok=True)
    return reason


def _stop_reason_of(args: Any) -> Optional[str]:
    try:
        return stop_reason(hook_settings(args).run_dir)
    except (RuntimeError, KeyError, TypeError, ValueError):  # args without usable settings: log_rollout reports it
        return None


def sample_trajectory(sample: Any) -> Trajectory:
    """A Trajectory view of a filled Sample (for the shared metrics module)."""
    counts = (sample.metadata or {}).get(METADATA_KEY, {})
    n = sample.response_length
    status = counts.get("status", "completed")
    return Trajectory(
        prompt_ids=list(sample.tokens[: len(sample.tokens) - n]),
        response_ids=list(sample.tokens[len(sample.tokens) - n :]),
        loss_mask=list(sample.loss_mask or [1] * n),
        rollout_logprobs=list(sample.rollout_log_probs or [0.0] * n),
        response_text=sample.response,
        turns=counts.get("turns", 0),
        tool_calls=[ToolCall(*record) for record in counts.get("tool_calls", [])],
        observation_tokens=counts.get("observation_tokens", 0),
        invalid_actions=counts.get("invalid_actions", 0),
        final_answer=counts.get("final_answer"),
        status="aborted" if status == "failed" else status,
    )


def _breakdown(sample: Any, cfg: RewardConfig) -> RewardBreakdown:
    value = sample.reward
    if isinstance(value, Mapping):
        optional = {key: float(value[key]) for key in ("tool", "f1") if key in value}
        return RewardBreakdown(
            total=float(value["total"]),
            exact_match=float(value["exact_match"]),
            format=float(value["format"]),
            **optional,
        )
    if value is None:  # aborted samples are never scored by Miles
        return score_response(sample.response, golden_answers(sample.label), cfg, tool_calls=tool_call_count(sample))
    return RewardBreakdown(total=float(value), exact_match=float(value), format=0.0)


def search_stats_and_reset() -> dict[str, float]:
    """This rollout's tool counters (``search/*``, …) over every runtime of the process (one per event loop
    and args)."""
    return combine_search_stats([runtime.tools.stats_and_reset() for runtime in _RUNTIMES.values()])


# How the search metrics of several runtimes combine; every other search/* key is a count and adds up.
_PER_CALL_KEYS = ("search/failure_rate", "search/cache_hit_rate", "search/latency_mean_s")
_MAX_KEYS = ("search/latency_max_s", "search/breaker_open")


def combine_search_stats(parts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Counts add up, rates and mean latency are weighted by each part's search/calls, maxima take the max."""
    calls = sum(part.get("search/calls", 0.0) for part in parts)
    combined: dict[str, float] = {}
    for key in dict.fromkeys(key for part in parts for key in part):
        values = [(part.get("search/calls", 0.0), part[key]) for part in parts if key in part]
        if key in _PER_CALL_KEYS:
            combined[key] = sum(n * value for n, value in values) / calls if calls else 0.0
        elif key in _MAX_KEYS:
            combined[key] = max(value for _, value in values)
        else:
            combined[key] = sum(value for _, value in values)
    return combined


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
