"""Real aiohttp servers on 127.0.0.1 for search tests, with scripted faults.

- ``RetrieverStub``: Search-R1's ``POST /retrieve`` over a tiny in-memory corpus (word-overlap
  ranking), so client tests control every byte the server sends.
- ``FakeSerper``: serper.dev's ``POST /search`` wire format: JSON ``{"q", "num", "gl", "hl"}``,
  ``X-API-KEY`` header, ``{"organic": [...], "answerBox"?, "credits"}``; 403 for a bad key,
  400 "Not enough credits" when the account is empty.

Both serve ``faults`` first (one per request, in order), then behave normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional

from aiohttp import web

from searchr1.config.schema import SearchConfig

CORPUS = [
    {"id": "0", "contents": '"Paris"\nParis is the capital and largest city of France.'},
    {"id": "1", "contents": '"Berlin"\nBerlin is the capital of Germany.'},
    {"id": "2", "contents": '"Mount Everest"\nMount Everest is the highest mountain above sea level.'},
    {"id": "3", "contents": '"Nile"\nThe Nile is a major river in northeastern Africa.'},
    {"id": "4", "contents": '"Ada Lovelace"\nAda Lovelace wrote the first computer program.'},
]


@dataclass
class Fault:
    """One scripted answer: wait ``delay_s``, then send ``body`` with ``status`` (None body: normal answer)."""

    status: int = 200
    body: Optional[str] = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Script:
    faults: deque[Fault] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    """Delay of every answer (to hold requests in flight)."""
    in_flight: int = 0
    max_in_flight: int = 0

    async def admit(self, request: web.Request) -> tuple[dict[str, Any], Optional[web.Response]]:
        """Log the request, hold it ``delay_s`` (counted as in flight), then the next scripted fault, if any."""
        body = await request.json()
        self.requests.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            return body, await self._next_fault()
        finally:
            self.in_flight -= 1

    async def _next_fault(self) -> Optional[web.Response]:
        if not self.faults:
            return None
        fault = self.faults.popleft()
        await asyncio.sleep(fault.delay_s)
        if fault.body is None and fault.status == 200:
            return None
        return web.Response(status=fault.status, text=fault.body or "", headers=fault.headers)


class RetrieverStub(_Script):
    """Search-R1 ``/retrieve``: one hit list per query, ``{"document", "score"}`` hits when asked for scores."""

    def __init__(self, corpus: Optional[list[dict[str, str]]] = None) -> None:
        super().__init__()
        self.corpus = corpus or CORPUS

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/retrieve", self._retrieve)
        return app

    def rank(self, query: str, topk: int) -> list[tuple[dict[str, str], float]]:
        words = set(query.lower().split())
        scored = [
            (doc, float(len(words & set(doc["contents"].lower().replace(".", "").split())))) for doc in self.corpus
        ]
        return sorted(scored, key=lambda pair: -pair[1])[:topk]

    async def _retrieve(self, request: web.Request) -> web.Response:
        body, fault = await self.admit(request)
        if fault is not None:
            return fault
        topk = body.get("topk") or 3
        result = []
        for query in body["queries"]:
            hits = self.rank(query, topk)
            if body.get("return_scores"):
                result.append([{"document": doc, "score": score} for doc, score in hits])
            else:
                result.append([doc for doc, _ in hits])
        return web.json_response({"result": result})


class FakeSerper(_Script):
    """serper.dev ``/search`` for one valid key and a credit balance."""

    def __init__(self, api_key: str, credits: int = 1000, answer_box: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        self.credits = credits
        self.answer_box = answer_box
        self.headers_seen: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/search", self._search)
        return app

    async def _search(self, request: web.Request) -> web.Response:
        self.headers_seen.append(dict(request.headers))
        body, fault = await self.admit(request)
        if fault is not None:
            return fault
        if request.headers.get("X-API-KEY") != self.api_key:
            return web.json_response({"message": "Unauthorized.", "statusCode": 403}, status=403)
        if self.credits <= 0:
            return web.json_response({"message": "Not enough credits", "statusCode": 400}, status=400)
        self.credits -= 1
        return web.json_response(self.answer(body))

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        num = int(body.get("num", 10))
        organic = [
            {
                "title": f"{body['q']} result {i}",
                "link": f"https://example.org/{i}",
                "snippet": f"Snippet {i} about {body['q']}.",
                "position": i,
            }
            for i in range(1, num + 1)
        ]
        answer: dict[str, Any] = {
            "searchParameters": {
                "q": body["q"],
                "gl": body.get("gl"),
                "hl": body.get("hl"),
                "num": num,
                "type": "search",
            },
            "organic": organic,
            "credits": 1,
        }
        if self.answer_box:
            answer["answerBox"] = {
                "title": "Answer",
                "answer": f"The answer to {body['q']}",
                "link": "https://example.org/a",
            }
        return answer


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 on a free port; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def malformed_bodies() -> list[str]:
    """2xx bodies a broken or foreign retriever might send."""
    return [
        "not json at all",
        json.dumps({"results": []}),
        json.dumps({"result": [[{"document": {"title": "x"}}]]}),
        json.dumps([1, 2]),
    ]


def refused_url() -> str:
    """A 127.0.0.1 URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def fast_search_cfg(**overrides: Any) -> SearchConfig:
    """Search settings with test-sized timeouts and backoff, so fault tests take milliseconds."""
    defaults: dict[str, Any] = dict(timeout_s=0.5, retries=2, backoff_s=0.01, breaker_failures=100, breaker_reset_s=0.2)
    return SearchConfig(**{**defaults, **overrides})
