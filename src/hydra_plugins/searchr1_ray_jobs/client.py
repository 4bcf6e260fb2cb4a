"""A small async client for the Ray Jobs REST API (what ``ray job submit/status/logs/stop`` call)."""

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})

REQUEST_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError)
"""What a :class:`RayJobsClient` call raises when the job server cannot answer: no connection, the
request's timeout, or an HTTP error status (``RuntimeError`` naming the status and the server's text)."""


@dataclass(frozen=True)
class JobStatus:
    status: str
    message: str = ""

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class RayJobsClient:
    def __init__(self, address: str, session: aiohttp.ClientSession, timeout_s: float) -> None:
        self._base = address.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def submit(
        self,
        *,
        submission_id: str,
        entrypoint: str,
        runtime_env: dict[str, Any],
        metadata: dict[str, str],
        num_cpus: float,
        num_gpus: float,
    ) -> str:
        body: dict[str, Any] = {
            "entrypoint": entrypoint,
            "submission_id": submission_id,
            "runtime_env": runtime_env,
            "metadata": metadata,
        }
        # Zero means "not reserved": send nothing so the server applies its own default.
        if num_cpus:
            body["entrypoint_num_cpus"] = num_cpus
        if num_gpus:
            body["entrypoint_num_gpus"] = num_gpus
        # The trailing slash matters: the job server routes /api/jobs/ (POST) separately.
        reply = await self._request("POST", "/api/jobs/", json=body)
        return reply.get("submission_id") or reply["job_id"]

    async def status(self, submission_id: str) -> JobStatus:
        reply = await self._request("GET", f"/api/jobs/{submission_id}")
        return JobStatus(status=reply["status"], message=reply.get("message") or "")

    async def logs(self, submission_id: str) -> str:
        return (await self._request("GET", f"/api/jobs/{submission_id}/logs")).get("logs", "")

    async def stop(self, submission_id: str) -> bool:
        return bool((await self._request("POST", f"/api/jobs/{submission_id}/stop")).get("stopped"))

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with self._session.request(method, self._base + path, timeout=self._timeout, **kwargs) as resp:
            if resp.status >= 400:
                raise RuntimeError(f"Ray job server {method} {path}: HTTP {resp.status}: {await resp.text()}")
            return await resp.json()
