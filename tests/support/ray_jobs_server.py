"""A fake Ray job server speaking the Ray Jobs REST API on 127.0.0.1, with scripted job outcomes.

Jobs go PENDING -> RUNNING -> SUCCEEDED after ``polls_to_finish`` status polls, or FAILED when their
entrypoint contains ``fail_when``. It runs in its own thread so a launcher in a subprocess can reach it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeJob:
    body: dict[str, Any]
    polls: int = 0
    status: str = "PENDING"
    stopped: bool = False


@dataclass
class FakeRayJobServer:
    polls_to_finish: int = 2
    fail_when: str | None = None
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    max_active: int = 0
    """Most jobs submitted and not yet finished at any one time."""
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> "FakeRayJobServer":
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self, started: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/api/version", self._version)
        app.router.add_post("/api/jobs/", self._submit)
        app.router.add_get("/api/jobs/{sid}", self._status)
        app.router.add_get("/api/jobs/{sid}/logs", self._logs)
        app.router.add_post("/api/jobs/{sid}/stop", self._stop)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        started.set()
        self._loop.run_forever()

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "fake", "ray_version": "fake"})

    async def _submit(self, request: web.Request) -> web.Response:
        body = await request.json()
        sid = body["submission_id"]
        if sid in self.jobs:  # the real server refuses reused ids the same way
            return web.Response(status=400, text=f"Job with submission_id {sid} already exists.")
        self.jobs[sid] = FakeJob(body=body)
        active = sum(job.status in ("PENDING", "RUNNING") for job in self.jobs.values())
        self.max_active = max(self.max_active, active)
        return web.json_response({"job_id": sid, "submission_id": sid})

    async def _status(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["sid"])
        if job is None:
            return web.Response(status=404, text="Job does not exist")
        job.polls += 1
        if job.status in ("PENDING", "RUNNING"):
            job.status = "RUNNING"
            if job.polls >= self.polls_to_finish:
                failed = self.fail_when is not None and self.fail_when in job.body["entrypoint"]
                job.status = "FAILED" if failed else "SUCCEEDED"
        message = "Job entrypoint command failed with exit code 1" if job.status == "FAILED" else ""
        return web.json_response({"status": job.status, "message": message,
                                  "submission_id": request.match_info["sid"]})

    async def _logs(self, request: web.Request) -> web.Response:
        job = self.jobs[request.match_info["sid"]]
        return web.json_response({"logs": f"ran: {job.body['entrypoint']}\n"})

    async def _stop(self, request: web.Request) -> web.Response:
        job = self.jobs[request.match_info["sid"]]
        job.stopped, job.status = True, "STOPPED"
        return web.json_response({"stopped": True})
