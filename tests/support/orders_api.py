"""A small internal JSON API on 127.0.0.1 for the http tool: order statuses behind a bearer token, plus the
ways a real service misbehaves (500s, slowness, a 50 MB answer, a body that is not JSON)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator

from aiohttp import web

from tests.support.search_servers import serve

TOKEN = "Bearer orders-s3cret-token"
ORDERS = {"1234": "shipped", "5678": "in the warehouse"}


@dataclass
class OrdersApi:
    url: str = ""
    requests: list[dict] = field(default_factory=list)

    async def order(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != TOKEN:
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json() if request.method == "POST" else dict(request.query)
        self.requests.append(body)
        order_id = body.get("id", "").removeprefix("order ").strip()
        if order_id not in ORDERS:
            return web.json_response({"error": f"no order {order_id}"}, status=404)
        return web.json_response({"data": {"id": order_id, "status": ORDERS[order_id]}})

    async def flaky(self, request: web.Request) -> web.Response:
        self.requests.append({})
        return web.json_response({"error": "boom"}, status=500)

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({"data": "late"})

    async def huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b" " * 1_048_576
        for _ in range(50):  # 50 MB; the client must stop reading long before the end
            await response.write(chunk)
        await response.write_eof()
        return response

    async def garbage(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>not json</html>", content_type="text/html")


@asynccontextmanager
async def serve_orders_api() -> AsyncIterator[OrdersApi]:
    api = OrdersApi()
    app = web.Application()
    app.router.add_route("*", "/orders", api.order)
    app.router.add_post("/flaky", api.flaky)
    app.router.add_post("/slow", api.slow)
    app.router.add_post("/huge", api.huge)
    app.router.add_post("/garbage", api.garbage)
    async with serve(app) as url:
        api.url = url
        yield api
