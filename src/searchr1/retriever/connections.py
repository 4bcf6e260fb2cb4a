"""The retrieval server's HTTP connections: read timeouts, a cap on idle connections, clients that
half-close, and malformed HTTP answered in JSON with one rate-limited log line.

Left to itself aiohttp waits as long as its keep-alive timeout for a request head that never
completes, closes a connection whose client shuts its sending side before the answer is written,
and answers a request it cannot parse in plain text with a traceback in the log: any client could
hold file handles or flood the log. ``GuardedSite`` serves an app over ``GuardedConnection``s,
which fix that; ``track_requests`` (a middleware) tells a connection when a request of its is
being answered. A body that arrives too slowly is the route's business (``server._read_body``),
since only the route knows whether and how much it reads.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Any, Callable, Optional

import orjson
from aiohttp import web

from searchr1.config.schema import RetrieverConfig

log = logging.getLogger(__name__)

_HEAD_END = b"\r\n\r\n"
_MAX_MESSAGE_CHARS = 160


class ClientErrorLog:
    """One WARNING line per client error, at most ``burst`` lines per ``window_s``, so a client
    sending garbage in a loop cannot flood the log; the first line after a dropped one counts them."""

    def __init__(self, *, burst: int = 10, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self._window_s = window_s
        self._clock = clock
        self._window_start = float("-inf")
        self._lines = 0
        self.dropped = 0

    def __call__(self, message: str) -> None:
        now = self._clock()
        if now - self._window_start >= self._window_s:
            self._window_start, self._lines = now, 0
        if self._lines >= self.burst:
            self.dropped += 1
            return
        self._lines += 1
        if self.dropped:
            message += f" ({self.dropped} more client errors not logged)"
            self.dropped = 0
        log.warning("%s", message)


def one_line(text: str) -> str:
    """A client-supplied or multi-line message cut to one short line (aiohttp's parse errors
    quote the offending bytes, and the client may have sent 100 KB of them)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:_MAX_MESSAGE_CHARS].rstrip(" :")


class _Phase(enum.Enum):
    WAITING = "no byte of a next request yet"
    HEAD = "a request head is arriving"
    REQUEST = "a complete head is being answered"


class IdleConnections:
    """Connections holding no request being answered (idle keep-alive, or a head still arriving),
    longest idle first; beyond ``limit`` the longest idle one is closed."""

    def __init__(self, limit: int, report: ClientErrorLog) -> None:
        self._limit = limit
        self._report = report
        self._idle: dict[GuardedConnection, None] = {}  # insertion-ordered

    def add(self, conn: GuardedConnection) -> None:
        self._idle.pop(conn, None)
        self._idle[conn] = None
        while len(self._idle) > self._limit:
            oldest = next(iter(self._idle))
            del self._idle[oldest]
            self._report(
                f"closed the longest idle connection ({oldest.peer}): more than {self._limit} idle "
                "(retriever.max_idle_connections)"
            )
            oldest.force_close()

    def discard(self, conn: GuardedConnection) -> None:
        self._idle.pop(conn, None)


class GuardedConnection(web.RequestHandler):
    """One client connection: aiohttp's handler plus a head read timeout (408), a place in
    ``IdleConnections``, half-close support and JSON protocol errors."""

    def __init__(
        self,
        manager: web.Server,
        cfg: RetrieverConfig,
        idle: IdleConnections,
        report: ClientErrorLog,
        *,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # We decode request bodies ourselves (server.decode_body): aiohttp would turn a bad gzip
        # body into an error in the middle of reading it and an unknown coding into a plain-text 400.
        # access_log=None (no access log) is what aiohttp's runners pass; its annotation omits None.
        super().__init__(
            manager,
            loop=loop,
            keepalive_timeout=cfg.idle_timeout_s,
            auto_decompress=False,
            access_log=None,  # type: ignore[arg-type]
        )
        self._event_loop = loop
        self._cfg = cfg
        self._idle = idle
        self._report = report
        self._phase = _Phase.WAITING
        self._head_tail = b""
        self._head_timer: Optional[asyncio.TimerHandle] = None
        self._close_after_answer = False
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        super().connection_made(transport)
        self._idle.add(self)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._cancel_head_timer()
        self._idle.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and self._phase is not _Phase.REQUEST:
            self._watch_head(data)
        super().data_received(data)

    def _watch_head(self, data: bytes) -> None:
        if self._phase is _Phase.WAITING:
            self._phase = _Phase.HEAD
            self._head_timer = self._event_loop.call_later(self._cfg.header_timeout_s, self._head_too_slow)
        seen = self._head_tail + data
        if _HEAD_END in seen:
            self.request_started()
        else:
            self._head_tail = seen[-(len(_HEAD_END) - 1) :]

    def request_started(self) -> None:
        """A complete head arrived (seen here or by ``track_requests``): it is answered, not timed."""
        self._phase = _Phase.REQUEST
        self._head_tail = b""
        self._cancel_head_timer()
        self._idle.discard(self)

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse, started: Optional[float]) -> None:
        # aiohttp calls this once a response is written: the connection is idle again (or done).
        super().log_access(request, response, started)
        if self._close_after_answer:
            self.force_close()  # also skips aiohttp's wait for the rest of an unread body
            return
        self._cancel_head_timer()  # the head just answered may have been one aiohttp refused
        self._phase = _Phase.WAITING
        self._idle.add(self)

    def close_after_answer(self) -> None:
        """Close once the response in progress is written (a body timed out, the client half-closed)."""
        self._close_after_answer = True

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio.Protocol's contract: True keeps writing
        # The client shut its sending side. A request already received is still answered (True
        # keeps the transport open for writing); a partial head can never complete.
        if self._phase is _Phase.REQUEST:
            self.close_after_answer()
            return True
        return False

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._phase is not _Phase.HEAD or self.transport is None:
            return
        message = f"request head not complete within {self._cfg.header_timeout_s:g} s (retriever.header_timeout_s)"
        self._report(f"408 to {self.peer}: {message}")
        self.transport.write(raw_json_response(408, "Request Timeout", message))
        self.force_close()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: Optional[BaseException] = None,
        message: Optional[str] = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (or, a bug, could not serve): JSON, one line."""
        if status >= 500:
            log.error("error serving a request from %s", self.peer, exc_info=exc)
            text = "internal error"
        else:
            text = "bad HTTP request: " + one_line(message or str(exc) or "malformed")
            self._report(f"{status} to {self.peer}: {text}")
        response = web.Response(body=orjson.dumps({"error": text}), status=status, content_type="application/json")
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        # What aiohttp still reports is about one client's connection (a broken body it was
        # draining, a client gone mid-write): one line, rate-limited, no traceback.
        exc = kwargs.get("exc_info")
        reason = one_line(f"{type(exc).__name__}: {exc}") if isinstance(exc, BaseException) else ""
        self._report(f"connection from {self.peer}: {args[0] if args else ''} {reason}".rstrip())


def raw_json_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, for when aiohttp has no request
    to answer (a head that never completed)."""
    body = orjson.dumps({"error": message})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@web.middleware
async def track_requests(request: web.Request, handler):
    """Tells the connection that one of its requests is being answered (a head it did not spot
    itself, such as a pipelined one, is then not timed or counted idle)."""
    conn = request.protocol
    if isinstance(conn, GuardedConnection):
        conn.request_started()
    return await handler(request)


class GuardedSite(web.BaseSite):
    """A TCP site over ``GuardedConnection``s sharing one ``IdleConnections`` and one log."""

    __slots__ = ("_host", "_port", "_cfg", "_report", "_idle")

    def __init__(self, runner: web.AppRunner, cfg: RetrieverConfig, port: int, report: ClientErrorLog) -> None:
        super().__init__(runner)
        self._host = cfg.host
        self._port = port
        self._cfg = cfg
        self._report = report
        self._idle = IdleConnections(cfg.max_idle_connections, report)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        manager = self._runner.server
        assert manager is not None  # BaseSite refuses a runner that was not set up
        loop = asyncio.get_running_loop()

        def connection() -> GuardedConnection:
            return GuardedConnection(manager, self._cfg, self._idle, self._report, loop=loop)

        self._server = await loop.create_server(connection, self._host, self._port)
