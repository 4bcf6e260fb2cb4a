"""Run model-written Python in a throwaway process, with layered limits.

Each call gets its own interpreter (`python -I`) in a fresh temp dir, with an environment built from
scratch (no secrets), and stdin from /dev/null. The layers, outermost first:

- a network namespace, when `unshare` works here: no interface but a downed loopback;
- when we run as root and `setpriv` works here, uid/gid 65534 with no capability but CAP_DAC_READ_SEARCH (it
  reads what root reads, the interpreter under /root included, and writes only what nobody may write), so file
  permissions, RLIMIT_NPROC and the kernel's checks on signals and /proc/<pid>/environ apply to it;
- rlimits on CPU seconds, address space, file size, open files and processes; no core dumps;
- an audit hook installed before the code runs, which refuses sockets, new processes (fork, exec, spawn,
  subprocess), signals, ctypes, gc introspection, other processes' /proc entries and writes outside the temp
  dir, with a "sandbox: ... is not allowed" PermissionError the model can read. Audit hooks are no sandbox by
  themselves (a determined program can dodge one); they make the common attempts fail politely;
- the parent kills the whole process group at the wall timeout or once either stream passes its byte limit,
  and reads no more than that limit, so its own memory stays bounded.

Not covered: reads (the code reads what root reads, ~/.netrc included), disk use in the temp dir beyond
`file_bytes` a file, and, with the hook alone, what it cannot see (mkfifo, mknod) or a program that tampers
with it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields

logger = logging.getLogger(__name__)

_NOBODY = 65534
_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}  # built from scratch, never os.environ
_REFUSAL = re.compile(r"sandbox: (.+?) is not allowed")
# Runs in the child with `-c`: limits, then the hook, then the user's main.py. Everything the hook uses is bound
# when it is made, so the user's code cannot swap it out through a module attribute.
_BOOTSTRAP = r"""
import os, resource, sys, traceback
# ctypes reads and writes raw memory (the hook's included); numpy imports it, so numpy is refused too.
BLOCKED_MODULES = ("ctypes", "_ctypes", "_posixsubprocess", "_multiprocessing", "_posixshmem", "_xxsubinterpreters")

def limit(cpu, memory, file_size, open_files, processes):  # lowering limits needs no privilege
    for kind, soft, hard in ((resource.RLIMIT_CPU, cpu, cpu + 1), (resource.RLIMIT_AS, memory, memory),
                             (resource.RLIMIT_FSIZE, file_size, file_size), (resource.RLIMIT_CORE, 0, 0),
                             (resource.RLIMIT_NOFILE, open_files, open_files), (resource.RLIMIT_NPROC, processes, processes)):
        resource.setrlimit(kind, (soft, hard))

def guard(home, getcwd=os.getcwd, getpid=os.getpid, fspath=os.fspath, isdir=os.path.isdir, PathLike=os.PathLike,
          str=str, bytes=bytes, int=int, isinstance=isinstance, any=any, frozenset=frozenset):
    denied = ("socket.", "os.fork", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.kill", "subprocess.",
              "ctypes.", "gc.get_", "os.symlink", "os.link", "cpython.PyInterpreterState_New")  # prefixes
    path_events = frozenset(("os.chmod", "os.chown", "os.mkdir", "os.remove", "os.removexattr", "os.rename",
                             "os.rmdir", "os.setxattr", "os.truncate", "os.utime", "shutil.rmtree"))
    writing_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    encoding = sys.getfilesystemencoding()

    def refuse(what):
        raise PermissionError(f"sandbox: {what} is not allowed")

    def resolve(path):  # by text alone: no link can be made, so none leads out of home
        path = fspath(path)
        path = path.decode(encoding, "surrogateescape") if isinstance(path, bytes) else path
        parts = []
        for part in (path if path.startswith("/") else getcwd() + "/" + path).split("/"):
            if part == "..":
                parts = parts[:-1]
            elif part not in ("", "."):
                parts.append(part)
        return "/" + "/".join(parts)

    def check_open(path, mode, flags):
        where = resolve(path)
        if (where + "/").startswith(home + "/"):
            return
        if flags & writing_flags or (mode is not None and any(c in mode for c in "wax+")):
            refuse(f"writing {path}")
        if mode is None and isdir(where):  # a directory fd would let dir_fd= calls write outside
            refuse(f"opening the directory {path}")
        parts = where.split("/")
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != str(getpid()):
            refuse(f"reading {where}")  # another process's environment, memory or files

    def hook(event, args):
        if event.startswith(denied):
            refuse(event)
        if event == "import" and args[0].partition(".")[0] in BLOCKED_MODULES:
            refuse(f"importing {args[0]}")
        if event == "open" and not isinstance(args[0], int):
            check_open(args[0], args[1], args[2] or 0)
        if event in path_events:
            for arg in args:
                if isinstance(arg, (str, bytes, PathLike)) and not (resolve(arg) + "/").startswith(home + "/"):
                    refuse(f"{event} on {arg}")

    return hook

def refuse_subprocess(*args):
    raise PermissionError("sandbox: subprocess is not allowed")

limit(*map(int, sys.argv[1:6]))
for name in BLOCKED_MODULES:
    sys.modules.pop(name, None)
import _posixsubprocess  # so `import subprocess` works; importing it afresh is refused below
_posixsubprocess.fork_exec = refuse_subprocess
sys.addaudithook(guard(os.getcwd()))
del limit, guard, refuse_subprocess
sys.argv = ["main.py"]
try:
    with open("main.py", encoding="utf-8") as source:
        exec(compile(source.read(), "main.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
except SystemExit:
    raise
except BaseException as error:  # printed without this file's frames (the hook's among them)
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename != "<string>"]
    if frames:
        print("Traceback (most recent call last):\n", *traceback.format_list(frames), sep="", end="", file=sys.stderr)
    print(*traceback.format_exception_only(type(error), error), sep="", end="", file=sys.stderr)
    sys.exit(1)
"""


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    wall_seconds: float = 10.0
    """Wall-clock limit; the whole process group is killed when it passes."""
    cpu_seconds: int = 5
    """CPU-time limit (RLIMIT_CPU): SIGXCPU, then SIGKILL a second later."""
    memory_bytes: int = 512 * 2**20
    """Address-space limit (RLIMIT_AS): larger allocations raise MemoryError."""
    file_bytes: int = 16 * 2**20
    """Largest file the code may write (RLIMIT_FSIZE)."""
    open_files: int = 64
    """Most file descriptors open at once (RLIMIT_NOFILE)."""
    processes: int = 64
    """RLIMIT_NPROC of the unprivileged uid (threads count; new processes are refused anyway)."""
    output_bytes: int = 16 * 2**10
    """Bytes kept of stdout and of stderr each; the process is killed when either passes it."""

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"python sandbox {field.name} must be positive, got {getattr(self, field.name)}")


@dataclass(frozen=True)
class SandboxResult:
    stdout: str
    stderr: str
    exit_code: int
    """The process's exit status; negative for a signal, as in subprocess."""
    timed_out: bool
    truncated: bool
    error: str | None
    """One sentence for the model when the run was refused something or killed; None otherwise."""


async def run_python(code: str, limits: SandboxLimits) -> SandboxResult:
    """Run `code` as main.py in a fresh process and temp dir, both gone when this returns."""
    home = os.path.realpath(tempfile.mkdtemp(prefix="searchr1-python-"))
    try:
        with open(os.path.join(home, "main.py"), "w", encoding="utf-8") as main:
            main.write(code)
        if os.geteuid() == 0:
            os.chown(home, _NOBODY, _NOBODY)
        process = await asyncio.create_subprocess_exec(
            *_command(limits),
            cwd=home,
            env={**_ENVIRONMENT, "HOME": home, "TMPDIR": home},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            return await _supervise(process, limits)
        finally:
            _kill_group(process.pid)  # leftovers keep the group id reserved, so this reaches only them
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _command(limits: SandboxLimits) -> list[str]:
    numbers = (limits.cpu_seconds, limits.memory_bytes, limits.file_bytes, limits.open_files, limits.processes)
    return [*isolation(), sys.executable, "-I", "-B", "-X", "utf8", "-c", _BOOTSTRAP, *map(str, numbers)]


# No pid namespace: util-linux 2.38's `unshare --fork` turns a child's death by signal into exit status 1.
_NAMESPACES = ("unshare", "--net", "--")
_CAPS = "-all,+dac_read_search"
_UNPRIVILEGED = ("setpriv", f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups", "--nnp",
                 f"--bounding-set={_CAPS}", f"--inh-caps={_CAPS}", f"--ambient-caps={_CAPS}", "--")  # fmt: skip


@functools.cache
def isolation() -> tuple[str, ...]:
    """The wrappers that work here, probed once (a preflight may call it to log which layers hold).

    The network namespace needs CAP_SYS_ADMIN; the uid drop is tried when we are root.
    """
    prefix: tuple[str, ...] = ()
    for layer in (_NAMESPACES, _UNPRIVILEGED) if os.geteuid() == 0 else (_NAMESPACES,):
        binary = shutil.which(layer[0])
        command = [*prefix, str(binary), *layer[1:], sys.executable, "-I", "-c", "import json"]
        probe = None if binary is None else subprocess.run(command, capture_output=True, timeout=60, check=False)
        if probe is not None and probe.returncode == 0:
            prefix = (*prefix, str(binary), *layer[1:])
        else:
            reason = f"{layer[0]} not on PATH" if probe is None else probe.stderr.decode(errors="replace").strip()
            logger.warning("python sandbox runs without %s (%s); the audit hook still applies", layer[0], reason)
    return prefix


class _Capture:
    """At most `limit` bytes of one stream."""

    def __init__(self, limit: int) -> None:
        self.limit, self.data, self.truncated = limit, bytearray(), False

    async def read(self, stream: asyncio.StreamReader | None, on_overflow: Callable[[], None]) -> None:
        assert stream is not None  # both streams are pipes
        while chunk := await stream.read(2**16):
            room = self.limit - len(self.data)
            self.data += chunk[:room]
            if len(chunk) > room:
                self.truncated = True
                on_overflow()
                return

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        return f"{text}\n[output truncated after {self.limit} bytes]" if self.truncated else text


async def _supervise(process: asyncio.subprocess.Process, limits: SandboxLimits) -> SandboxResult:
    stdout, stderr = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
    kill = functools.partial(_kill_group, process.pid)

    async def drain() -> None:
        await asyncio.gather(stdout.read(process.stdout, kill), stderr.read(process.stderr, kill))
        await process.wait()

    timed_out = False
    try:
        await asyncio.wait_for(drain(), limits.wall_seconds)
    except asyncio.TimeoutError:
        timed_out = True
        kill()
    exit_code = await process.wait()
    truncated = stdout.truncated or stderr.truncated
    error = _error(stderr.text(), exit_code, timed_out, truncated, limits)
    return SandboxResult(stdout.text(), stderr.text(), exit_code, timed_out, truncated, error)


def _error(stderr: str, exit_code: int, timed_out: bool, truncated: bool, limits: SandboxLimits) -> str | None:
    if timed_out:
        return f"killed: still running after {limits.wall_seconds:g} s"
    if truncated:
        return f"killed: printed more than {limits.output_bytes} bytes"
    if exit_code == -signal.SIGXCPU:
        return f"killed: used more than {limits.cpu_seconds} s of CPU time"
    if exit_code < 0:
        return f"killed by signal {signal.Signals(-exit_code).name}"
    if refusal := _REFUSAL.search(stderr):
        return f"refused: {refusal[1]} is not allowed (no network, no new processes, writes only in the working dir)"
    if "MemoryError" in stderr:
        return f"ran out of memory (the limit is {limits.memory_bytes // 2**20} MiB)"
    return None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
