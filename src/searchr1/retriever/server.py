"""The retrieval HTTP server: Search-R1's ``POST /retrieve`` plus ``/health`` and ``/metrics``.

Request ``{"queries": [...], "topk": k, "return_scores": bool}``; response ``{"result": [...]}``
with one list per query of ``{"document": {"id", "contents"}, "score": s}`` when return_scores,
else of the bare documents — the shapes of Search-R1's ``retrieval_server.py`` (without its
``return_scores=false`` crash). Every error is a JSON ``{"error": message}``: 400 for a body that is
not a JSON object (or not valid gzip/deflate data, or HTTP the server cannot parse), 415 for
another Content-Encoding, 422 for a bad or over-limit field, 413 for an oversized body, 408 for a
head or body that does not arrive in time, 500 (logged with its trace, never sent) when the search
itself fails. Client errors are logged in one line each, rate-limited (``connections.ClientErrorLog``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import orjson
from aiohttp import web

from searchr1.config.schema import RetrieverConfig
from searchr1.retriever.batcher import Hit, MicroBatcher, SearchFn
from searchr1.retriever.connections import ClientErrorLog, GuardedConnection, GuardedSite, one_line, track_requests
from searchr1.retriever.corpus import Corpus
from searchr1.retriever.index import Index

log = logging.getLogger(__name__)

_LATENCY_WINDOW = 10_000
BATCHER_KEY = web.AppKey("batcher", MicroBatcher)
STATE_KEY: web.AppKey[ServerState] = web.AppKey("state")
ERRORS_KEY = web.AppKey("client_errors", ClientErrorLog)
# Content-Encoding -> zlib wbits (gzip: its own header; deflate: the zlib wrapper RFC 9110 names).
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class RequestError(Exception):
    """A bad request: answered with ``status`` and a one-line message, never a trace; ``close``
    ends the connection after the answer (the rest of the body was not read)."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


@dataclass(frozen=True)
class RetrieveRequest:
    queries: list[str]
    topk: int
    return_scores: bool


class ServerState:
    """Request counters and a sliding window of latencies for ``/metrics``."""

    def __init__(self, cfg: RetrieverConfig, info: dict[str, Any]) -> None:
        self.cfg = cfg
        self.info = info
        self.requests = 0
        self.errors = 0
        self.queries = 0
        self.latencies_s: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self.started = time.monotonic()

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000.0) if self.latencies_s else 0.0


def make_search_fn(index: Index, corpus: Corpus) -> SearchFn:
    """The worker's job: one vectorised index search, then the hit rows read from the corpus."""

    def search(queries: Sequence[str], topk: int) -> list[list[Hit]]:
        scores, rows = index.search(queries, topk)
        return [
            [(corpus.doc(int(r)), float(s)) for r, s in zip(row_ids, row_scores) if r >= 0]
            for row_ids, row_scores in zip(rows, scores)
        ]

    return search


def parse_request(body: bytes, cfg: RetrieverConfig) -> RetrieveRequest:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(400, 'body must be a JSON object like {"queries": [...], "topk": 3}')
    queries = payload.get("queries")
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise RequestError(422, "'queries' must be a list of strings")
    if len(queries) > cfg.max_queries:
        raise RequestError(422, f"{len(queries)} queries in one request; the limit is {cfg.max_queries}")
    too_long = next((i for i, q in enumerate(queries) if len(q) > cfg.max_query_chars), None)
    if too_long is not None:
        raise RequestError(
            422, f"query {too_long} has {len(queries[too_long])} characters; the limit is {cfg.max_query_chars}"
        )
    return RetrieveRequest(queries, _parse_topk(payload.get("topk"), cfg), _parse_flag(payload.get("return_scores")))


def _parse_topk(topk: Any, cfg: RetrieverConfig) -> int:
    # Search-R1 falls back to the server default for a missing, null or 0 topk. A JSON bool is
    # no number (in Python False == 0, so it must be turned away before that test).
    if isinstance(topk, bool):
        raise RequestError(422, f"'topk' must be a positive integer, got {str(topk).lower()}")
    if topk is None or topk == 0:
        return cfg.default_topk
    if not isinstance(topk, int) or topk < 0:
        raise RequestError(422, f"'topk' must be a positive integer, got {topk!r}")
    if topk > cfg.max_topk:
        raise RequestError(422, f"'topk'={topk} is above the limit {cfg.max_topk}")
    return topk


def _parse_flag(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(422, f"'return_scores' must be true or false, got {value!r}")
    return value


def format_result(hits: list[list[Hit]], return_scores: bool) -> dict:
    if return_scores:
        return {"result": [[{"document": doc, "score": score} for doc, score in row] for row in hits]}
    return {"result": [[doc for doc, _ in row] for row in hits]}


def json_response(payload: dict, status: int = 200) -> web.Response:
    # orjson: the stdlib encoder was a tenth of the server's CPU time at 256 requests in flight.
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def _read_body(request: web.Request, cfg: RetrieverConfig) -> bytes:
    limit = cfg.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RequestError(413, f"body of {request.content_length} bytes is above the limit {limit}", close=True)
    try:
        # A body that came with its head needs no timer (the common case: one packet).
        read = request.read() if request.content.is_eof() else asyncio.wait_for(request.read(), cfg.body_timeout_s)
        body = await read
    except asyncio.TimeoutError:
        message = f"body not received within {cfg.body_timeout_s:g} s (retriever.body_timeout_s)"
        raise RequestError(408, message, close=True) from None
    except web.HTTPRequestEntityTooLarge:
        raise RequestError(413, f"body is above the limit of {limit} bytes", close=True) from None
    except web.RequestPayloadError as exc:  # e.g. a broken chunked encoding
        raise RequestError(400, f"body could not be read: {one_line(str(exc.__cause__ or exc))}", close=True) from None
    return decode_body(body, request.headers.get("Content-Encoding", ""), limit)


def decode_body(body: bytes, encoding: str, limit: int) -> bytes:
    """The body as sent before its Content-Encoding (gzip, deflate or none), at most ``limit`` bytes."""
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in _DECODERS:
        raise RequestError(415, f"Content-Encoding {one_line(coding)!r} is not supported: send gzip, deflate or none")
    inflater = zlib.decompressobj(_DECODERS[coding])
    try:
        decoded = inflater.decompress(body, limit + 1)  # a small bomb must not inflate past the limit
    except zlib.error as exc:
        raise RequestError(400, f"body is not valid {coding} data: {exc}") from None
    if len(decoded) > limit:
        raise RequestError(413, f"decoded body is above the limit of {limit} bytes")
    if not inflater.eof:
        raise RequestError(400, f"body is not valid {coding} data: it ends before the compressed stream does")
    return decoded


async def retrieve(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    started = time.perf_counter()
    state.requests += 1
    body = await _read_body(request, state.cfg)
    parsed = parse_request(body, state.cfg)
    hits = await request.app[BATCHER_KEY].submit(parsed.queries, parsed.topk)
    state.queries += len(parsed.queries)
    state.latencies_s.append(time.perf_counter() - started)
    return json_response(format_result(hits, parsed.return_scores))


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", **request.app[STATE_KEY].info})


async def metrics(request: web.Request) -> web.Response:
    state, batcher = request.app[STATE_KEY], request.app[BATCHER_KEY]
    return json_response(
        {
            "requests": state.requests,
            "errors": state.errors,
            "queries": state.queries,
            "latency_ms": {"p50": state.latency_ms(50), "p99": state.latency_ms(99), "window": len(state.latencies_s)},
            "queue_depth": batcher.queue_depth,
            "batch": batcher.stats.as_dict(),
            "batching": {
                "max_batch_size": state.cfg.max_batch_size,
                "max_wait_ms": state.cfg.max_wait_ms,
                "workers": batcher.workers,
                "piece_ms": state.cfg.piece_ms,
                "piece_size": batcher.piece_size(),
            },
            "uptime_s": time.monotonic() - state.started,
        }
    )


@web.middleware
async def json_errors(request: web.Request, handler):
    """Every failure becomes a JSON error; a client's is logged in one line (rate-limited), an
    unexpected one with its trace (never sent)."""
    close = False
    try:
        return await handler(request)
    except RequestError as exc:
        status, message, close = exc.status, str(exc), exc.close
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status, message = exc.status, exc.reason
    except Exception as exc:  # the client gets a message, the log gets the trace
        log.exception("error serving %s %s", request.method, request.path)
        status, message = 500, f"internal error: {type(exc).__name__}: {exc}"
    request.app[STATE_KEY].errors += 1
    if status < 500:
        request.app[ERRORS_KEY](f"{status} to {request.remote} for {request.method} {request.path}: {message}")
    response = json_response({"error": message}, status=status)
    if close:
        response.force_close()
        if isinstance(request.protocol, GuardedConnection):
            request.protocol.close_after_answer()  # without waiting for the rest of the body
    return response


def make_app(batcher: MicroBatcher, cfg: RetrieverConfig, info: dict[str, Any]) -> web.Application:
    # aiohttp's own body limit is a backstop above ours so that we answer with our JSON message.
    app = web.Application(middlewares=[track_requests, json_errors], client_max_size=cfg.max_body_bytes + 1)
    app[BATCHER_KEY] = batcher
    app[STATE_KEY] = ServerState(cfg, info)
    app[ERRORS_KEY] = ClientErrorLog()
    app.router.add_post("/retrieve", retrieve)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(
    app: web.Application, port: int, port_file: Optional[Path] = None, *, exit_with_parent: bool = False
) -> None:
    """Serve on ``retriever.host`` until SIGINT/SIGTERM (or, with ``exit_with_parent``, until the
    parent process dies); the bound port (useful with port 0) goes to ``port_file``."""
    # Cancel the handler when its client disconnects so the batcher can skip the abandoned query.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    cfg = app[STATE_KEY].cfg
    site = GuardedSite(runner, cfg, port, app[ERRORS_KEY])
    await site.start()
    bound = runner.addresses[0][1]
    log.info("retriever listening on http://%s:%d", cfg.host, bound)
    if port_file is not None:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_parent(stop)) if exit_with_parent else None
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await runner.cleanup()


async def _watch_parent(stop: asyncio.Event, interval_s: float = 1.0) -> None:
    # A trainer killed with SIGKILL cannot stop its retriever; we notice being re-parented.
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(interval_s)
    log.info("parent process %d is gone; stopping", parent)
    stop.set()
