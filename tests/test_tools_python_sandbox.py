"""The Python sandbox, each case a real child process: what it runs, what it refuses, and what it kills.

The hook's refusals are checked twice: with the isolation layers this machine supports (a network
namespace, an unprivileged uid) and with the audit hook alone, as on a host where neither works.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import tracemalloc
from pathlib import Path

import pytest

from searchr1.tools import python_sandbox
from searchr1.tools.python_sandbox import SandboxLimits, SandboxResult, run_python

FAST = SandboxLimits(wall_seconds=20.0)
REFUSED = "refused: {} is not allowed (no network, no new processes, writes only in the working dir)"


@pytest.fixture(params=["isolated", "hook-only"])
def isolation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "hook-only":
        monkeypatch.setattr(python_sandbox, "isolation", lambda: ())
    return str(request.param)


async def run(code: str, limits: SandboxLimits = FAST) -> SandboxResult:
    """run_python, with a bound of its own so a broken sandbox fails the test instead of hanging it."""
    return await asyncio.wait_for(run_python(code, limits), limits.wall_seconds + 30)


def group_is_gone(result: SandboxResult) -> bool:
    """Whether the process group the code printed first (`print(os.getpgid(0), flush=True)`) has no process left."""
    try:
        os.killpg(int(result.stdout.split()[0]), 0)
    except ProcessLookupError:
        return True
    return False


async def test_hello_world(isolation: str) -> None:
    result = await run("print('hello, world')")
    assert result == SandboxResult("hello, world\n", "", 0, False, False, None)


async def test_an_exception_prints_its_traceback_without_the_sandbox_frames(isolation: str) -> None:
    result = await run("def f():\n    return 1 / 0\n\nf()")
    assert result.exit_code == 1 and result.error is None
    assert result.stderr == (
        "Traceback (most recent call last):\n"
        '  File "main.py", line 4, in <module>\n    f()\n'
        '  File "main.py", line 2, in f\n    return 1 / 0\n           ~~^~~\n'
        "ZeroDivisionError: division by zero\n"
    )


async def test_a_syntax_error_and_an_exit_status_come_back_as_they_are() -> None:
    syntax = await run("print(")
    assert syntax.exit_code == 1 and "<string>" not in syntax.stderr
    assert syntax.stderr.startswith('  File "main.py", line 1\n') and "SyntaxError" in syntax.stderr
    assert (await run("import sys; sys.exit(3)")).exit_code == 3


async def test_an_infinite_loop_is_killed_at_the_wall_timeout(isolation: str) -> None:
    started = time.perf_counter()
    result = await run("import os\nprint(os.getpgid(0), flush=True)\nwhile True: pass", SandboxLimits(wall_seconds=1.0))
    assert time.perf_counter() - started < 6
    assert result.timed_out and result.exit_code == -signal.SIGKILL
    assert result.error == "killed: still running after 1 s"
    assert group_is_gone(result)


async def test_cpu_time_is_limited(isolation: str) -> None:
    result = await run("while True: pass", SandboxLimits(wall_seconds=60.0, cpu_seconds=1))
    assert not result.timed_out and result.exit_code == -signal.SIGXCPU
    assert result.error == "killed: used more than 1 s of CPU time"


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("while True: os.fork()", "os.fork"),
        ("import subprocess\nsubprocess.run(['echo', 'hi'])", "subprocess.Popen"),
        ("import multiprocessing\np = multiprocessing.Process(target=print); p.start(); p.join()", "os.fork"),
        ("import multiprocessing\nmultiprocessing.Pool(2)", "importing _multiprocessing"),
        ("os.system('echo hi')", "os.system"),
        ("os.posix_spawn('/bin/echo', ['echo'], {})", "os.posix_spawn"),
        ("os.execv('/bin/echo', ['echo'])", "os.exec"),
        ("import _posixsubprocess\n_posixsubprocess.fork_exec()", "subprocess"),
        ("import sys\ndel sys.modules['_posixsubprocess']\nimport _posixsubprocess", "importing _posixsubprocess"),
        ("os.kill(os.getppid(), 9)", "os.kill"),
        ("import ctypes", "importing ctypes"),
        ("import gc\ngc.get_objects()", "gc.get_objects"),
    ],
)
async def test_new_processes_and_escape_hatches_are_refused(isolation: str, code: str, refused: str) -> None:
    result = await run(f"import os\nprint(os.getpgid(0), flush=True)\n{code}")
    assert result.exit_code == 1
    assert result.error == REFUSED.format(refused)
    assert f"PermissionError: sandbox: {refused} is not allowed" in result.stderr
    assert group_is_gone(result)


async def test_a_large_allocation_fails_with_memory_error(isolation: str) -> None:
    result = await run("data = bytearray(2 * 2**30)")
    assert result.exit_code == 1 and result.stderr.endswith("MemoryError\n")
    assert result.error == "ran out of memory (the limit is 512 MiB)"


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("open(TARGET, 'w').write('x')", "writing {target}"),
        ("open(TARGET, 'a')", "writing {target}"),
        ("from pathlib import Path\nPath(TARGET).write_text('x')", "writing {target}"),
        ("os.open(TARGET, os.O_WRONLY | os.O_CREAT)", "writing {target}"),
        ("open('inside', 'w').write('x')\nos.rename('inside', TARGET)", "os.rename on {target}"),
        ("os.mkdir(TARGET)", "os.mkdir on {target}"),
        ("os.symlink(TARGET, 'link')", "os.symlink"),
        ("os.open(os.path.dirname(TARGET), os.O_RDONLY)", "opening the directory {parent}"),
        ("open('../../' + TARGET, 'w')", "writing ../../{target}"),
    ],
)
async def test_writing_outside_the_working_dir_is_refused(
    isolation: str, tmp_path: Path, code: str, refused: str
) -> None:
    target = tmp_path / "outside"
    result = await run(f"import os\nTARGET = {str(target)!r}\n{code}")
    assert result.error == REFUSED.format(refused.format(target=target, parent=tmp_path))
    assert not target.exists()


async def test_the_working_dir_is_writable_and_removed_afterwards(isolation: str) -> None:
    code = "import os, tempfile\nopen('a.txt', 'w').write('kept')\ntempfile.mkstemp()\nprint(os.getcwd(), open('a.txt').read())"
    result = await run(code)
    home, content = result.stdout.split()
    assert content == "kept" and result.error is None
    assert Path(home).name.startswith("searchr1-python-") and not Path(home).exists()


async def test_the_environment_holds_no_secret(isolation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERPER_API_KEY", "sk-test")
    result = await run("import os\nprint(sorted(os.environ))\nprint(os.environ.get('SERPER_API_KEY'))")
    assert result.stdout == "['HOME', 'LANG', 'PATH', 'TMPDIR']\nNone\n"
    peek = await run(f"print(open('/proc/{os.getpid()}/environ').read())")
    assert "sk-test" not in peek.stdout and peek.error == REFUSED.format(f"reading /proc/{os.getpid()}/environ")


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("socket.create_connection(('127.0.0.1', PORT), timeout=5)", "socket.getaddrinfo"),
        ("socket.socket().connect(('127.0.0.1', PORT))", "socket.__new__"),
        ("socket.socketpair()", "socket.__new__"),
    ],
)
async def test_a_socket_to_localhost_is_refused(isolation: str, code: str, refused: str) -> None:
    connections: list[object] = []
    server = await asyncio.start_server(lambda reader, writer: connections.append(writer), "127.0.0.1", 0)
    async with server:
        result = await run(f"import socket\nPORT = {server.sockets[0].getsockname()[1]}\n{code}")
        await asyncio.sleep(0.2)
    assert result.error == REFUSED.format(refused) and connections == []


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_100_mb_of_output_is_cut_short_and_never_held(isolation: str, stream: str) -> None:
    code = f"import os, sys\nprint(os.getpgid(0), flush=True)\nfor _ in range(1600): sys.{stream}.write('x' * 2**16)"
    tracemalloc.start()
    started = time.perf_counter()
    result = await run(code)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - started < 10 and peak < 4 * 2**20
    assert result.truncated and result.exit_code == -signal.SIGKILL
    assert result.error == "killed: printed more than 16384 bytes"
    text = getattr(result, stream)
    assert text.endswith("x\n[output truncated after 16384 bytes]") and len(text) < 16384 + 100
    assert group_is_gone(result)


async def test_calls_run_side_by_side() -> None:
    started = time.perf_counter()
    code = "import os, time\ntime.sleep(1)\nprint({}, os.getcwd())"
    results = await asyncio.gather(*(run(code.format(index)) for index in range(6)))
    assert time.perf_counter() - started < 6  # one after another would take over 6 s
    assert [int(result.stdout.split()[0]) for result in results] == list(range(6))
    assert len({result.stdout.split()[1] for result in results}) == 6  # each in its own dir


def test_isolation_layers_hold_where_the_hook_does_not_look(tmp_path: Path) -> None:
    """mkfifo raises no audit event: the unprivileged uid is what stops it; the namespace has no network."""
    layers = [Path(part).name for part in python_sandbox.isolation()]
    if "setpriv" not in layers or "unshare" not in layers:
        pytest.skip(f"this machine supports only {layers or 'no'} isolation layers")
    code = (
        f"import os\nprint(os.getuid(), open('/proc/net/dev').read().count(':'))\nos.mkfifo({str(tmp_path / 'fifo')!r})"
    )
    result = asyncio.run(run(code))
    assert result.stdout == "65534 1\n"  # one interface: the loopback
    assert result.stderr.endswith("PermissionError: [Errno 13] Permission denied\n")  # the kernel's, not the hook's
    assert not (tmp_path / "fifo").exists()


@pytest.mark.parametrize("field", ["wall_seconds", "cpu_seconds", "memory_bytes", "output_bytes"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=f"^python sandbox {field} must be positive, got 0$"):
        SandboxLimits(**{field: 0})
