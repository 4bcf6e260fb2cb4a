"""A retrieval server owned by a run: built if missing, started as a child process, stopped on exit.

Trainers use it when ``backend.urls`` is empty. The index is cached on disk next to the corpus
(``build`` is locked, so concurrent runs wait for one builder instead of racing).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Iterator, NoReturn, Optional

from searchr1.config.schema import LocalBackendConfig, RetrieverConfig, SearchR1Config
from searchr1.errors import UserError
from searchr1.paths import RunDir
from searchr1.preflight import in_hf_cache, writable_dir_problem
from searchr1.retriever.flags import config_to_args

_LOG_TAIL_LINES = 30

log = logging.getLogger(__name__)


class RetrieverStartError(UserError, RuntimeError):
    """The embedded retriever failed to build or come up; one line: the reason, the last line of
    its log (the error it died with) and where the whole log is."""


class EmbeddedRetriever:
    """``with EmbeddedRetriever(corpus, cfg) as r: use(r.url)``."""

    def __init__(
        self,
        corpus_path: str | os.PathLike,
        retriever_cfg: RetrieverConfig,
        port: int = 0,
        log_path: Optional[str | os.PathLike] = None,
        *,
        startup_timeout_s: float = 300.0,
    ) -> None:
        self.corpus_path = Path(corpus_path)
        self.cfg = retriever_cfg
        self.port = port
        self.log_path = (
            Path(log_path) if log_path else Path(tempfile.mkdtemp(prefix="searchr1-retriever-")) / RunDir.RETRIEVER_LOG
        )
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self._proc: Optional[subprocess.Popen] = None
        self._log: Optional[IO[bytes]] = None

    def __enter__(self) -> "EmbeddedRetriever":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def pid(self) -> Optional[int]:
        """The server process, while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    def _command(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "searchr1.retriever",
            *args,
            f"--corpus={self.corpus_path}",
            "--quiet",
            *config_to_args(self.cfg),
        ]

    def start(self) -> None:
        if not self.corpus_path.is_file():
            raise RetrieverStartError(f"retriever corpus not found: {self.corpus_path}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        port_file = self.log_path.with_name(f"retriever-{os.getpid()}-{id(self)}.port")
        try:
            # One child builds (if needed) and serves: torch/faiss load once. A build has no
            # deadline (wiki-18 takes hours); the child dying still ends the wait.
            needs_build = not _index_exists(self.corpus_path, self.cfg)
            self._launch(port_file, needs_build)
            port = self._wait_for_port(port_file, None if needs_build else self.startup_timeout_s)
            self.url = f"http://{_client_host(self.cfg.host)}:{port}"
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        finally:
            port_file.unlink(missing_ok=True)

    def _launch(self, port_file: Path, build: bool) -> None:
        port_file.unlink(missing_ok=True)
        args = ["serve", f"--port={self.port}", f"--port-file={port_file}", "--exit-with-parent"]
        args += ["--build-if-missing"] if build else []
        self._proc = subprocess.Popen(
            self._command(*args), stdout=self._log, stderr=subprocess.STDOUT, env=_child_env()
        )

    def _wait_for_port(self, port_file: Path, timeout_s: Optional[float]) -> int:
        deadline = time.monotonic() + timeout_s if timeout_s is not None else float("inf")
        while time.monotonic() < deadline:
            self._check_alive()
            if port_file.is_file():
                return int(port_file.read_text())
            time.sleep(0.1)
        self._fail(f"retriever did not start listening within {timeout_s:.0f} s")

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self._fail(f"{self.url}/health did not answer within {self.startup_timeout_s:.0f} s")

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._fail(f"retriever exited with code {self._proc.returncode}")

    def _fail(self, reason: str) -> NoReturn:
        last = next((line.strip() for line in reversed(self.log_tail().splitlines()) if line.strip()), "")
        said = f": {last}" if last else ""
        raise RetrieverStartError(f"embedded retriever failed: {reason}{said} (full log: {self.log_path})")

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _index_exists(corpus_path: Path, cfg: RetrieverConfig) -> bool:
    from searchr1.retriever.index import index_ready, resolve_index_dir

    return index_ready(resolve_index_dir(corpus_path, cfg), cfg)


def _client_host(bind_host: str) -> str:
    return "127.0.0.1" if bind_host in ("0.0.0.0", "") else bind_host


def _child_env() -> dict[str, str]:
    # Offline: the encoder comes from a local dir or the local HF cache, never from a hub.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def needs_embedded_retriever(cfg: SearchR1Config) -> bool:
    """The run has the search tool on a backend that names no retriever (``backend=local``, ``backend.urls=[]``)
    and neither replays recorded searches nor has search switched off."""
    searching = "search" in cfg.tools and cfg.search.enabled and not cfg.search.replay_path
    return searching and cfg.backend.starts_embedded_retriever


@contextlib.contextmanager
def run_retriever(cfg: SearchR1Config, run_dir: Path) -> Iterator[Optional[list[str]]]:
    """Start an embedded retriever for a run that needs one and yield its URL; else yield None.

    None tells the search stack to use ``backend.urls`` (or the google backend).
    """
    if not needs_embedded_retriever(cfg):
        yield None
        return
    log.info(
        "backend.urls is empty: starting the embedded %s retriever over %s", cfg.retriever.kind, cfg.data.corpus_path
    )
    assert isinstance(cfg.backend, LocalBackendConfig)  # the only backend that starts one
    with EmbeddedRetriever(
        cfg.data.corpus_path, cfg.retriever, port=cfg.backend.embedded_port, log_path=run_dir / RunDir.RETRIEVER_LOG
    ) as retriever:
        yield [retriever.url]


def embedded_retriever_problems(cfg: SearchR1Config) -> list[str]:
    """What the embedded retriever would lack: its index (or a writable place to build it) and, for a dense
    index, its encoder."""
    from searchr1.retriever.index import index_ready, resolve_index_dir

    rcfg = cfg.retriever
    index_dir = resolve_index_dir(Path(cfg.data.corpus_path).expanduser(), rcfg)
    problems = [_encoder_problem(rcfg.encoder)] if rcfg.kind == "dense" else []
    if index_ready(index_dir, rcfg):
        return [p for p in problems if p]
    if index_dir.suffix == ".index":  # a FAISS file such as Search-R1's e5_Flat.index: we do not build those
        problems.append(
            f"retriever.index_dir={index_dir}: no index file there (Search-R1's e5_Flat.index comes "
            f"with `searchr1-data download --out {index_dir.parent}`)"
        )
    else:  # built on first use
        problems.append(writable_dir_problem("retriever.index_dir", index_dir))
    return [p for p in problems if p]


def _encoder_problem(name: str) -> Optional[str]:
    from searchr1.retriever.encoder import resolve_encoder

    try:
        path = Path(resolve_encoder(name)).expanduser()
    except FileNotFoundError as exc:
        return f"retriever.encoder={name}: {exc}"
    if (path / "config.json").is_file() or in_hf_cache(name):
        return None
    return f"retriever.encoder={name}: no such dir, and not in the local Hugging Face cache (encoders load offline)"
