"""An Engine that speaks SGLang's native ``/generate`` HTTP API with token ids in and out.

Request: ``input_ids`` + ``sampling_params`` + ``return_logprob``. Response: ``{"text", "output_ids",
"meta_info": {"output_token_logprobs": [[logprob, token_id, text|None], ...], "finish_reason":
{"type": "stop"|"length"|"abort", ...}}}``. Stop strings are kept in the output (``no_stop_trim``)
and so are special tokens, so the ids we train on are exactly the ids that were sampled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping, Sequence

import aiohttp

from searchr1.engines.base import EngineOutput, FinishReason, SamplingParams

log = logging.getLogger(__name__)

_FINISH_TYPES: tuple[FinishReason, ...] = ("stop", "length", "abort")


def aborted() -> EngineOutput:
    """A fresh empty abort (fresh lists: callers own what they get)."""
    return EngineOutput(token_ids=[], logprobs=[], finish_reason="abort")


class SGLangEngine:
    """One SGLang server or router. Never raises into the batch: failures come back as aborts."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, timeout_s: float = 600.0) -> None:
        self._url = base_url.rstrip("/") + "/generate"
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def generate(self, input_ids: Sequence[int], params: SamplingParams) -> EngineOutput:
        output, _ = await self.generate_with_meta(input_ids, params)
        return output

    async def generate_with_meta(self, input_ids: Sequence[int], params: SamplingParams) -> tuple[EngineOutput, dict]:
        """``generate`` plus SGLang's ``meta_info`` without the per-token lists (cached_tokens, prompt_tokens,
        weight_version, finish_reason, ...), for callers that keep it (Miles' Sample); ``{}`` on a failure."""
        payload = request_payload(input_ids, params)
        try:
            async with self._session.post(self._url, json=payload, timeout=self._timeout) as response:
                if response.status != 200:
                    body = (await response.text())[:200]
                    log.warning("SGLang %s answered HTTP %d: %s", self._url, response.status, body)
                    return aborted(), {}
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("SGLang %s request failed: %s", self._url, exc.__class__.__name__ + f": {exc}")
            return aborted(), {}
        return parse_response(body), response_meta(body)


def request_payload(input_ids: Sequence[int], params: SamplingParams) -> dict[str, Any]:
    return {
        "input_ids": list(input_ids),
        "sampling_params": {
            "max_new_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stop": list(params.stop),
            "no_stop_trim": True,  # keep the stop text and the EOS token: we train on them
            "skip_special_tokens": False,
        },
        "return_logprob": True,
    }


def parse_response(body: Mapping[str, Any]) -> EngineOutput:
    """EngineOutput from a ``/generate`` body; a malformed body is an abort, not an exception."""
    meta = body.get("meta_info") if isinstance(body, Mapping) else None
    if not isinstance(meta, Mapping):
        log.warning("SGLang response without meta_info: %.200r", body)
        return aborted()
    entries = meta.get("output_token_logprobs") or []
    try:
        # Each entry is [logprob, token_id, token_text]; output_ids, when present, must agree with it.
        token_ids = [int(entry[1]) for entry in entries]
        logprobs = [float(entry[0]) if entry[0] is not None else 0.0 for entry in entries]
    except (TypeError, ValueError, IndexError) as exc:
        log.warning("SGLang output_token_logprobs malformed: %s", exc)
        return aborted()
    output_ids = body.get("output_ids")
    if output_ids and not entries:
        log.warning("SGLang returned tokens without logprobs; was return_logprob dropped by a proxy?")
        return aborted()
    if output_ids is not None and list(output_ids) != token_ids:
        log.warning("SGLang output_ids disagree with output_token_logprobs (%d vs %d)", len(output_ids), len(token_ids))
        return aborted()
    return EngineOutput(token_ids=token_ids, logprobs=logprobs, finish_reason=_finish_type(meta))


def response_meta(body: Any) -> dict[str, Any]:
    """The scalar part of a response's ``meta_info`` (per-token lists dropped); ``{}`` when malformed."""
    meta = body.get("meta_info") if isinstance(body, Mapping) else None
    if not isinstance(meta, Mapping) or not isinstance(meta.get("finish_reason"), Mapping):
        return {}
    return {key: value for key, value in meta.items() if not key.endswith("_logprobs")}


def _finish_type(meta: Mapping[str, Any]) -> FinishReason:
    reason = meta.get("finish_reason")
    kind = reason.get("type") if isinstance(reason, Mapping) else reason
    # Anything unknown (None while streaming, a new SGLang type) cannot be trusted as complete.
    return kind if kind in _FINISH_TYPES else "abort"
