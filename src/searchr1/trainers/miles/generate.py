"""``--custom-generate-function-path``: our rollout inside Miles.

``generate`` is the new form Miles' class-based rollout calls, ``async (GenerateFnInput) -> GenerateFnOutput``;
``generate_legacy`` is the ``(args, sample, sampling_params)`` form. Both run
:func:`searchr1.rollout.loop.run_trajectory` against SGLang's ``/generate`` at Miles' router and fill Miles'
``Sample`` (samples.py). Miles is imported lazily, inside the hooks, so this imports without Miles."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from searchr1.config.schema import RolloutConfig
from searchr1.engines.base import EngineOutput, SamplingParams
from searchr1.engines.sglang import SGLangEngine
from searchr1.rollout.loop import run_trajectory
from searchr1.rollout.tokens import prompt_ids
from searchr1.trainers.miles.runtime import process_runtime
from searchr1.trainers.miles.samples import SampleInvariantError, check_sample, fail_sample, fill_sample
from searchr1.trainers.miles.stop_file import stop_reason

log = logging.getLogger(__name__)


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
        runtime = await process_runtime(args, tokenizer)
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
