"""A fake Ray job server speaking the Ray Jobs REST API on 127.0.0.1, with scripted job outcomes.

Jobs go PENDING -> RUNNING -> SUCCEEDED after ``polls_to_finish`` status polls, or FAILED when their
entrypoint contains ``fail_when``. With ``run_entrypoints`` it is a one-node cluster instead: each job's
entrypoint runs here in a shell with its runtime env's env_vars (and a one-node stand-in for the ``ray``
Python API on PYTHONPATH); its exit code decides the status, its output is the log. It runs in its own
thread so a launcher in a subprocess can reach it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from aiohttp import web


FAKE_RAY_API = Path(__file__).parent / "fake_ray"


@dataclass
class FakeJob:
    body: dict[str, Any]
    polls: int = 0
    status: str = "PENDING"
    stopped: bool = False
    logs: Optional[str] = None
    run: Optional["asyncio.Future[None]"] = None


@dataclass
class FakeRayJobServer:
    polls_to_finish: int = 2
    fail_when: str | None = None
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    max_active: int = 0
    """Most jobs submitted and not yet finished at any one time."""
    run_entrypoints: bool = False
    before_run: Optional[Callable[[dict[str, Any]], None]] = None
    """Called with a job's body just before its entrypoint runs (e.g. to hide a file from this "node")."""
    serving: Optional[Callable[[], bool]] = None
    """Whether the job server answers yet (503 until then), as a real head's answers only once it runs."""
    submit_answer_delay_s: float = 0.0
    """How long a submission's answer takes after the job is recorded (a launcher cancelled meanwhile never sees it)."""
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
        if self.serving is not None and not self.serving():
            return web.Response(status=503, text="the head is still starting")
        return web.json_response({"version": "fake", "ray_version": "fake"})

    async def _submit(self, request: web.Request) -> web.Response:
        body = await request.json()
        sid = body["submission_id"]
        if sid in self.jobs:  # the real server refuses reused ids the same way
            return web.Response(status=400, text=f"Job with submission_id {sid} already exists.")
        self.jobs[sid] = job = FakeJob(body=body)
        if self.run_entrypoints:
            job.run = asyncio.ensure_future(self._execute(job))
        active = sum(job.status in ("PENDING", "RUNNING") for job in self.jobs.values())
        self.max_active = max(self.max_active, active)
        await asyncio.sleep(self.submit_answer_delay_s)
        return web.json_response({"job_id": sid, "submission_id": sid})

    async def _execute(self, job: FakeJob) -> None:
        job.status = "RUNNING"
        if self.before_run is not None:
            self.before_run(job.body)
        env = {**os.environ, **job.body.get("runtime_env", {}).get("env_vars", {})}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FAKE_RAY_API), env.get("PYTHONPATH", "")) if p)
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))  # the node's python3
        done = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: subprocess.run(
                ["bash", "-c", job.body["entrypoint"]], env=env, capture_output=True, text=True, timeout=120
            ),
        )
        job.logs = done.stdout + done.stderr
        job.status = "SUCCEEDED" if done.returncode == 0 else "FAILED"

    async def _status(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["sid"])
        if job is None:
            return web.Response(status=404, text="Job does not exist")
        job.polls += 1
        if job.status in ("PENDING", "RUNNING") and job.run is None:
            job.status = "RUNNING"
            if job.polls >= self.polls_to_finish:
                failed = self.fail_when is not None and self.fail_when in job.body["entrypoint"]
                job.status = "FAILED" if failed else "SUCCEEDED"
        message = "Job entrypoint command failed with exit code 1" if job.status == "FAILED" else ""
        return web.json_response({"status": job.status, "message": message, "submission_id": request.match_info["sid"]})

    async def _logs(self, request: web.Request) -> web.Response:
        job = self.jobs[request.match_info["sid"]]
        return web.json_response({"logs": job.logs if job.logs is not None else f"ran: {job.body['entrypoint']}\n"})

    async def _stop(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["sid"])
        if job is None:
            return web.Response(status=404, text="Job does not exist")
        job.stopped, job.status = True, "STOPPED"
        return web.json_response({"stopped": True})
