"""Run-time resource checks both trainers run before anything heavy starts (model load, W&B, Ray).

Each check returns None or one line that names the config key (or environment variable) to fix.
The trainers' own preflights (``trainers/local/preflight.py``, ``trainers/miles/preflight.py``)
pick the checks that apply to them; this module imports nothing above ``config``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional

from searchr1.config.checks import ConfigError

RETRIEVER_TIMEOUT_S = 5.0
RUN_LOCK_FILE = ".searchr1.lock"


class PreflightError(ConfigError):
    """One or more preflight problems, one per line."""


def raise_on_problems(problems: list[str], title: str) -> None:
    """Nothing for no problems; one problem is one line, several are a title and one line each."""
    if len(problems) == 1:
        raise PreflightError(f"{title}: {problems[0]}")
    if problems:
        raise PreflightError(f"{title}:\n" + "\n".join(f"  - {p}" for p in problems))


def secret_problem(env: Mapping[str, str], name: str, key: str) -> Optional[str]:
    if env.get(name):
        return None
    return f"environment variable {name} is not set ({key} names it); export it before launching"


def file_problem(key: str, path: str, command: str = "searchr1-data prepare") -> Optional[str]:
    target = Path(path).expanduser()
    if target.is_file():
        return None
    if target.is_dir():
        return f"{key}={path} is a directory; name the file in it (made by `{command}`)"
    return f"{key}={path}: file not found (make it with `{command}`)"


def writable_dir_problem(key: str, path: str | os.PathLike) -> Optional[str]:
    """None when ``path`` is, or can be created as, a directory we may write into."""
    target = Path(path).expanduser().absolute()
    existing = target
    while not existing.exists():  # the nearest ancestor that exists is what mkdir -p needs
        existing = existing.parent
    if not existing.is_dir():
        return f"{key}={path}: cannot create a directory there, {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{key}={path}: {existing} is not writable"
    return None


def in_hf_cache(repo_id: str) -> bool:
    """Whether an HF model id has its config.json in the local hub cache (what offline loading reads)."""
    if repo_id.startswith((".", "/", "~")) or repo_id.count("/") != 1:
        return False
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def url_problem(key: str, url: str) -> Optional[str]:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("http", "https") and parsed.hostname:
        return None
    return f"{key}: {url!r} is not an http(s) URL like http://127.0.0.1:8000"


def retriever_problem(url: str, timeout_s: float = RETRIEVER_TIMEOUT_S) -> Optional[str]:
    """None when the retriever answers a one-query /retrieve. Search-R1's own server has no
    /health route, so this is the one probe that works for ours and theirs."""
    body = json.dumps({"queries": ["preflight"], "topk": 1, "return_scores": False}).encode()
    request = urllib.request.Request(
        url.rstrip("/").removesuffix("/retrieve") + "/retrieve", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if "result" in json.loads(response.read()):
                return None
            return f"retriever {url} answered /retrieve without a 'result' field (not a Search-R1 retrieval server?)"
    except urllib.error.HTTPError as exc:
        return f"retriever {url} answered /retrieve with HTTP {exc.code} (backend.urls)"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"retriever {url} is not reachable ({getattr(exc, 'reason', exc)}); start it or fix backend.urls"


def remove_unused_run_dir(run_dir: Path, startup: Iterable[str]) -> bool:
    """Remove ``run_dir`` if it holds nothing but ``startup``, the files every job writes as it starts
    (Hydra's ``.hydra/`` and job log, the run lock, the resolved config): a job refused before it did
    anything leaves no empty run dir behind. A dir with anything else in it (checkpoints, metrics, a
    command) is kept. True when removed."""
    if not run_dir.is_dir() or any(entry.name not in set(startup) for entry in run_dir.iterdir()):
        return False
    with open(run_dir / RUN_LOCK_FILE, "a+") as handle:
        try:  # a job refused because another run holds this dir must leave that run's dir alone
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        shutil.rmtree(run_dir, ignore_errors=True)
    return True


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run dir for this run: a second run given the same dir (e.g. a repeated
    ``hydra.run.dir=``) fails in one line instead of interleaving its metrics, rollouts and
    checkpoints with ours. An flock: the kernel releases it when the holder dies, even by SIGKILL."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RUN_LOCK_FILE
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise PreflightError(
                f"hydra.run.dir={run_dir} is in use by another run (pid {holder}); "
                "give this run its own dir, or resume only after that run ends"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
