"""A fake SGLang server on 127.0.0.1 speaking the native ``/generate`` protocol.

It stands in for the GPU engine only: requests and responses have SGLang's shape (``input_ids``,
``sampling_params`` with ``stop``/``no_stop_trim``/``max_new_tokens``, ``return_logprob``; answers
``text``, ``output_ids`` and ``meta_info`` with ``output_token_logprobs`` and ``finish_reason``).
The tokens come from a scripted policy run through the real tokenizer.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional

from aiohttp import web

from searchr1.engines.base import SamplingParams
from tests.support.scripted import Policy, emulate_generation, fake_logprob
from tests.support.search_servers import serve


@dataclass
class FakeSGLang:
    tokenizer: Any
    policy: Policy
    requests: list[dict] = field(default_factory=list)
    fail_status: Optional[int] = None
    """Answer every /generate with this HTTP status (error injection)."""
    weight_version: Optional[str] = None
    """Sent as meta_info.weight_version when set (SGLang reports the weights that served a request)."""
    answer_first: int = 0
    """With ``fail_status``: answer this many /generate calls normally before failing (a mid-trajectory failure)."""
    url: str = ""

    async def generate(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.requests.append(payload)
        if self.fail_status is not None and len(self.requests) > self.answer_first:
            return web.json_response({"error": {"message": "injected"}}, status=self.fail_status)
        return web.json_response(self.respond(payload))

    def respond(self, payload: dict) -> dict:
        input_ids = payload["input_ids"]
        sp = payload.get("sampling_params", {})
        params = SamplingParams(max_new_tokens=sp.get("max_new_tokens", 128), stop=tuple(sp.get("stop") or ()))
        context = self.tokenizer.decode(input_ids, skip_special_tokens=False)
        planned = self.tokenizer.encode(self.policy(context), add_special_tokens=False)
        ids, finish = emulate_generation(self.tokenizer, planned, params)
        text = self.tokenizer.decode(ids, skip_special_tokens=sp.get("skip_special_tokens", True))
        finish_reason: dict[str, Any] = {"type": finish}
        matched = next((s for s in params.stop if s in text), None)
        if finish == "length":
            finish_reason["length"] = len(ids)
        elif matched is not None:
            finish_reason["matched"] = matched
            if not sp.get("no_stop_trim", False):
                text = text[: text.find(matched)]  # SGLang trims the text (not the ids) by default
        elif ids and ids[-1] == self.tokenizer.eos_token_id:
            finish_reason["matched"] = ids[-1]
        start = len(input_ids)
        meta = {
            "finish_reason": finish_reason,
            "prompt_tokens": len(input_ids),
            "completion_tokens": len(ids),
            "cached_tokens": self._cached_tokens(input_ids),
        }
        if self.weight_version is not None:
            meta["weight_version"] = self.weight_version
        if payload.get("return_logprob"):
            meta["output_token_logprobs"] = [[fake_logprob(start + i, t), t, None] for i, t in enumerate(ids)]
        return {"text": text, "output_ids": ids, "meta_info": meta}

    def _cached_tokens(self, input_ids: list[int]) -> int:
        """What a radix cache would hold: the prefix shared with the previous request."""
        if len(self.requests) < 2:
            return 0
        previous = self.requests[-2]["input_ids"]
        shared = 0
        for a, b in zip(previous, input_ids):
            if a != b:
                break
            shared += 1
        return shared


@asynccontextmanager
async def serve_fake_sglang(tokenizer: Any, policy: Policy) -> AsyncIterator[FakeSGLang]:
    """Start the fake on a free port of 127.0.0.1; ``.url`` is its base URL."""
    fake = FakeSGLang(tokenizer, policy)
    app = web.Application()
    app.router.add_post("/generate", fake.generate)
    app.router.add_get("/health", lambda _request: web.json_response({"status": "ok"}))
    async with serve(app) as url:
        fake.url = url
        yield fake
