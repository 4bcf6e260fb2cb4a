"""The python tool: ``<python> print(2 ** 10) </python>`` -> ``<result>1024</result>``.

Each call runs in a fresh, limited process (:mod:`searchr1.tools.python_sandbox`): CPU time, wall time,
memory, file size and output are bounded, there is no network, no secret in its environment and nothing
outside its empty temporary working dir to write to. What it printed (stdout, then stderr) is the observation;
a non-zero exit, a refusal or a kill is a failed call whose observation says what happened.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from searchr1.config.checks import check_range
from searchr1.config.schema import ToolConfig
from searchr1.tools.base import InProcessTool, ToolContext, ToolOutput, ToolSpec, cut_observation
from searchr1.tools.python_sandbox import SandboxLimits, SandboxResult, run_python

MIB = 2**20


@dataclass(kw_only=True)
class PythonToolConfig(ToolConfig):
    """The python tool: the policy's code in a fresh, limited process per call."""

    NODE: ClassVar[str] = "python"
    enabled: bool = True
    """false: every call answers that code execution is unavailable (an ablation)."""
    timeout_s: float = 5.0
    """Wall-clock limit of one call; the whole process group is killed past it."""
    cpu_s: int = 5
    """CPU-time limit of one call (RLIMIT_CPU)."""
    memory_mb: int = 512
    """Address-space limit of the child (RLIMIT_AS), in MiB."""
    file_size_mb: int = 16
    """Largest file the code may write inside its temporary working dir (RLIMIT_FSIZE), in MiB."""
    max_output_bytes: int = 16_384
    """stdout and stderr kept per call, each; the process is killed once it writes more."""
    max_observation_chars: int = 2000
    """Characters of the output the model sees (the rest is cut with a marker)."""
    concurrency: int = 2
    """Calls running at once per process (each is a child process)."""

    def __post_init__(self) -> None:
        check_range("python.timeout_s", self.timeout_s, low=0.1, high=600)
        check_range("python.cpu_s", self.cpu_s, low=1, high=600)
        check_range("python.memory_mb", self.memory_mb, low=64)
        check_range("python.file_size_mb", self.file_size_mb, low=1)
        check_range("python.max_output_bytes", self.max_output_bytes, low=1024)
        check_range("python.max_observation_chars", self.max_observation_chars, low=16)
        check_range("python.concurrency", self.concurrency, low=1, high=64)


UNAVAILABLE = "Code execution is unavailable right now. Answer with what you know."


class PythonRunner(InProcessTool):
    """Runs each call in its own sandboxed process, at most ``python.concurrency`` at once."""

    def __init__(self, cfg: PythonToolConfig) -> None:
        self._cfg = cfg
        self._limits = SandboxLimits(
            wall_seconds=cfg.timeout_s,
            cpu_seconds=cfg.cpu_s,
            memory_bytes=cfg.memory_mb * MIB,
            file_bytes=cfg.file_size_mb * MIB,
            output_bytes=cfg.max_output_bytes,
        )
        self._slots = asyncio.Semaphore(cfg.concurrency)

    async def call(self, argument: str) -> ToolOutput:
        if not self._cfg.enabled:
            return ToolOutput(UNAVAILABLE, failed=True, error="python.enabled=false")
        async with self._slots:
            result = await run_python(argument, self._limits)
        text = cut_observation(_shown(result), self._cfg.max_observation_chars)
        failed = bool(result.error or result.timed_out or result.exit_code)
        return ToolOutput(
            text, failed=failed, error=result.error or (f"exit code {result.exit_code}" if failed else None)
        )


def _shown(result: SandboxResult) -> str:
    parts = [part.rstrip("\n") for part in (result.stdout, result.stderr, result.error or "") if part]
    return "\n".join(parts) if parts else "(no output)"


def build(cfg: PythonToolConfig, ctx: ToolContext) -> PythonRunner:
    return PythonRunner(cfg)


TOOL = ToolSpec(
    name="python",
    config_cls=PythonToolConfig,
    description="Run a short Python program and read what it prints (no network, no files outside its own dir).",
    argument="code",
    argument_description="The Python code to run; print what you need to see.",
    example="print(sum(range(1, 101)))",
    build=build,
)
