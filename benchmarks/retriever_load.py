"""Load test of the retrieval server, side by side in one run: micro-batching on vs off, or ours vs
Search-R1's own server.

N concurrent clients (default 256, Miles' search_concurrency) each send one query per request,
as Miles does, for ``--duration`` seconds against real server subprocesses on 127.0.0.1. By
default each index kind is served twice, batching on (the config's max_batch_size / max_wait_ms)
and off (max_batch_size=1), and we print QPS, p50/p99 latency and the on/off QPS ratio.
Targets: >= 5x for dense, >= 3x for BM25, p99 < 1 s with batching on.

``--vs-search-r1 <Search-R1 checkout>/search_r1/search/retrieval_server.py`` serves the dense index
with ours (``retriever=dense`` as shipped) and with Search-R1's FastAPI server instead (same
encoder, same FAISS file, same corpus), run by ``--search-r1-python``: a Python with fastapi,
uvicorn and datasets installed besides torch, faiss and transformers. Their file runs unchanged
on this CPU: ``.cuda()`` is a no-op and ``.half()`` keeps fp32 (so its scores equal ours), and
uvicorn binds 127.0.0.1 and a free port instead of 0.0.0.0:8000. Measurement slices alternate
between the servers, in alternating order, and a 1-query request is timed while each server
searches a 2560-query one. Targets: >= 10x QPS, p99 < 1 s.

Every mode prints each server's CPU time per answered request (all its threads; the machine's other
load hardly moves it) and the time its threads were runnable but waited for a core: on a shared
machine the second says how much of the QPS the other load took.

Without ``--corpus`` a synthetic corpus of ``--num-docs`` passages (default 100k) is generated
in the cache. Its words are whole-word entries of the encoder's vocabulary, so queries have
realistic token counts (3-6 words). Encoding 100k passages needs a GPU or a long CPU run, so
for the synthetic corpus the dense index holds random unit vectors by default (``--dense-vectors
encode`` builds it for real); query encoding and the FAISS search, the work the server does
per request, are real either way. The index is a bare IndexFlatIP file, the layout of
Search-R1's e5_Flat.index.

    python benchmarks/retriever_load.py --duration 10
    python benchmarks/retriever_load.py --vs-search-r1 ../Search-R1/search_r1/search/retrieval_server.py \
        --search-r1-python venv/bin/python --num-docs 2000 --dense-vectors encode --duration 24 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import runpy
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Protocol

import numpy as np
import orjson
import uvloop

from searchr1.config.compose import compose_config
from searchr1.paths import cache_root
from searchr1.config.schema import RetrieverConfig
from searchr1.config.validate import to_typed
from searchr1.retriever.embedded import EmbeddedRetriever
from searchr1.retriever.encoder import DEFAULT_ENCODER, resolve_encoder
from searchr1.retriever.dense_index import index_file
from searchr1.retriever.index import resolve_index_dir

TARGET_RATIO = {"dense": 5.0, "bm25": 3.0}
TARGET_VS_SEARCH_R1 = 10.0
TARGET_P99_S = 1.0
BIG_REQUEST = 512 * 5  # Search-R1's GRPO recipe: train_batch_size 512 x n_agent 5 in one POST


@dataclass
class LoadResult:
    kind: str
    mode: str
    requests: int
    errors: int
    qps: float
    p50_ms: float
    p99_ms: float
    mean_batch: Optional[float]
    server_cpu_ms: float
    """Server CPU time (all its threads) per request answered, over the slices."""
    server_starved_ms: float
    """Time the server's threads were runnable but waited for a core, per request answered: when it
    is large next to server_cpu_ms, the machine's other load, not the server, sets the QPS. Summed
    over the threads alive at both ends of a slice: ours keeps its threads; Search-R1's thread pool
    retires idle threads, so its figure is a lower bound."""
    client_cpu_ms: float
    """This load generator's CPU time per request answered."""


class Target(Protocol):
    """A server under load: its URL and its process (for its CPU time)."""

    url: str

    @property
    def pid(self) -> Optional[int]: ...


def _vocabulary() -> list[str]:
    vocab = Path(resolve_encoder("all-MiniLM-L6-v2")) / "vocab.txt"
    return [w for w in vocab.read_text().split() if w.isalpha() and w.isascii() and len(w) >= 3]


def synthetic_corpus(path: Path, num_docs: int, seed: int) -> Path:
    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    words = np.array(_vocabulary())
    # Zipf-like word frequencies so that BM25 posting lists look like text, not uniform noise.
    weights = 1.0 / np.arange(1, len(words) + 1) ** 0.8
    weights /= weights.sum()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as out:
        for start in range(0, num_docs, 10_000):
            n = min(10_000, num_docs - start)
            lengths = rng.integers(30, 70, size=n)
            tokens = rng.choice(words, size=int(lengths.sum()), p=weights)
            cuts = np.cumsum(lengths)[:-1]
            for i, passage in enumerate(np.split(tokens, cuts)):
                title = " ".join(passage[:2]).title()
                row = {"id": str(start + i), "contents": f'"{title}"\n{" ".join(passage)}'}
                out.write(json.dumps(row) + "\n")
    tmp.replace(path)
    return path


def random_dense_index(corpus_path: Path, dim: int, seed: int) -> Path:
    import faiss

    from searchr1.retriever.corpus import Corpus

    path = corpus_path.with_name(corpus_path.stem + f".random{dim}.index")
    if path.is_file():
        return path
    n = len(Corpus(corpus_path))
    vectors = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    faiss.write_index(index, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)
    return path


def sample_queries(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = _vocabulary()[:8000]
    return [" ".join(rng.choices(words, k=rng.randint(3, 6))) for _ in range(count)]


class RawClient:
    """One keep-alive HTTP/1.1 connection with pre-encoded requests: the load generator shares
    the CPU with the server, so it must cost far less per request than the server does."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        assert self.reader is not None
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = int(header.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def request_body(queries: list[str]) -> bytes:
    return json.dumps({"queries": queries, "topk": 3, "return_scores": True}).encode()


async def drive(
    url: str, queries: list[str], concurrency: int, warmup_s: float, duration_s: float
) -> tuple[list[float], int, int]:
    """Closed loop: each client sends its next query as soon as the last one is answered.
    Returns the latencies and errors inside the measurement window (after the warm-up), and the
    number of requests answered in the whole slice (for CPU time per request)."""
    host, port = url.removeprefix("http://").split(":")
    bodies = [request_body([q]) for q in queries]
    latencies: list[float] = []
    errors = answered = 0
    start = time.perf_counter()
    window = (start + warmup_s, start + warmup_s + duration_s)

    async def client(worker: int) -> None:
        nonlocal errors, answered
        conn = RawClient(host, int(port))
        i = worker
        try:
            while True:
                sent = time.perf_counter()
                try:
                    status, body = await conn.post("/retrieve", bodies[i % len(bodies)])
                    ok = status == 200 and len(orjson.loads(body)["result"]) == 1
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok, conn = False, RawClient(host, int(port))
                done = time.perf_counter()
                answered += ok
                if window[0] <= done <= window[1]:
                    latencies.append(done - sent)
                    errors += not ok
                i += concurrency
        finally:
            conn.close()

    tasks = [asyncio.create_task(client(w)) for w in range(concurrency)]
    await asyncio.sleep(warmup_s + duration_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return latencies, errors, answered


def settle(url: str, has_metrics: bool, timeout_s: float = 120.0) -> None:
    """Let a server drop or finish what the cancelled clients left queued before the next slice:
    ours says so in /metrics; any server has done it once a fresh request is answered."""
    if not has_metrics:
        post(url, request_body(["settle"]), timeout_s)
        return
    deadline = time.monotonic() + timeout_s
    while get_json(url + "/metrics")["queue_depth"] > 0 and time.monotonic() < deadline:
        time.sleep(0.1)


def scheduled_s(pid: Optional[int]) -> np.ndarray:
    """[CPU seconds of a process (its threads, exited ones included), seconds its live threads were
    runnable but waited for a core (the kernel's per-thread schedstat)]."""
    if pid is None:
        return np.zeros(2)
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    waiting_ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
                waiting_ns += int(schedstat.read().split()[1])
        except FileNotFoundError:  # the thread just exited
            continue
    return np.array([cpu_s, waiting_ns / 1e9])


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class _Tally:
    latencies: list[float]
    errors: int = 0
    answered: int = 0
    server_s: np.ndarray = field(default_factory=lambda: np.zeros(2))
    client_cpu_s: float = 0.0


def side_by_side(kind: str, targets: dict[str, Target], args, queries: list[str]) -> list[LoadResult]:
    """Measurement slices alternate between the servers, in alternating order, so that all see the
    same background load (this machine's cores are shared)."""
    tallies = {mode: _Tally([]) for mode in targets}
    slice_s = args.duration / args.rounds
    for round_ in range(args.rounds):
        for mode in list(targets)[:: 1 if round_ % 2 == 0 else -1]:
            target, tally = targets[mode], tallies[mode]
            server, client_cpu = scheduled_s(target.pid), own_cpu_s()
            # uvloop on the load side as on our server: the generator shares the two cores.
            got, failed, answered = uvloop.run(drive(target.url, queries, args.concurrency, args.warmup, slice_s))
            tally.server_s += scheduled_s(target.pid) - server
            tally.client_cpu_s += own_cpu_s() - client_cpu
            tally.latencies += got
            tally.errors += failed
            tally.answered += answered
            settle(target.url, isinstance(target, EmbeddedRetriever))
    return [_summary(kind, mode, tallies[mode], args.duration, mean_batch(targets[mode])) for mode in targets]


def mean_batch(target: Target) -> Optional[float]:
    return get_json(target.url + "/metrics")["batch"]["mean_size"] if isinstance(target, EmbeddedRetriever) else None


def _summary(kind: str, mode: str, tally: _Tally, duration_s: float, batch: Optional[float]) -> LoadResult:
    lat = np.array(tally.latencies) if tally.latencies else np.zeros(1)
    per_request_ms = 1000.0 / max(tally.answered, 1)
    return LoadResult(
        kind=kind,
        mode=mode,
        requests=len(tally.latencies),
        errors=tally.errors,
        qps=len(tally.latencies) / duration_s,
        p50_ms=float(np.percentile(lat, 50) * 1000),
        p99_ms=float(np.percentile(lat, 99) * 1000),
        mean_batch=batch,
        server_cpu_ms=tally.server_s[0] * per_request_ms,
        server_starved_ms=tally.server_s[1] * per_request_ms,
        client_cpu_ms=tally.client_cpu_s * per_request_ms,
    )


def run_kind(corpus: Path, cfg: RetrieverConfig, args, queries: list[str], log_dir: Path) -> list[LoadResult]:
    """Batching on vs off, both servers up side by side."""
    modes = {"on": cfg, "off": replace(cfg, max_batch_size=1, max_wait_ms=0.0)}
    servers = {
        mode: EmbeddedRetriever(corpus, c, log_path=log_dir / f"{cfg.kind}-{mode}.log") for mode, c in modes.items()
    }
    try:
        for server in servers.values():
            server.start()
        return side_by_side(cfg.kind, dict(servers), args, queries)
    finally:
        for server in servers.values():
            server.stop()


class SearchR1Server:
    """Search-R1's ``retrieval_server.py`` in a child process (see ``serve_search_r1``)."""

    def __init__(self, script: Path, python: str, corpus: Path, index_file: Path, log_path: Path) -> None:
        self.url = ""
        self._command = [python, __file__, "--serve-search-r1", str(script)]
        self._command += ["--corpus", str(corpus), "--index-file", str(index_file)]
        self._log_path = log_path
        self._proc: Optional[subprocess.Popen] = None

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> "SearchR1Server":
        port = free_port()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as log:
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
            self._proc = subprocess.Popen([*self._command, "--port", str(port)], stdout=log, stderr=log, env=env)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600  # their corpus load uses `datasets`, then the encoder
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Search-R1's server exited with {self._proc.returncode}; see {self._log_path}")
            try:
                post(self.url, request_body(["ready"]), 10.0)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def __exit__(self, *exc_info) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=30)


def serve_search_r1(script: Path, port: int, corpus: Path, index_file: Path) -> None:
    """Run Search-R1's server file unchanged on a CPU-only machine: its encoder calls ``.cuda()`` on
    the model and the inputs, and ``.half()`` (fp16 is its GPU setting; on a CPU fp32 keeps its scores
    equal to ours); uvicorn serves 127.0.0.1:<port> instead of 0.0.0.0:8000, with its other defaults."""
    import torch
    import uvicorn

    torch.nn.Module.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    torch.nn.Module.half = lambda self: self  # type: ignore[method-assign]
    uvicorn_run = uvicorn.run
    uvicorn.run = lambda app, **_: uvicorn_run(app, host="127.0.0.1", port=port)
    encoder = resolve_encoder(DEFAULT_ENCODER)
    sys.argv = [str(script), "--index_path", str(index_file), "--corpus_path", str(corpus), "--topk", "3"]
    sys.argv += ["--retriever_name", "minilm", "--retriever_model", encoder]  # no e5/bge query prefix
    runpy.run_path(str(script), run_name="__main__")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: bytes, timeout_s: float) -> bytes:
    request = urllib.request.Request(url + "/retrieve", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        return resp.read()


async def small_during_big(url: str, big: list[str], delay_s: float) -> tuple[float, float]:
    """Seconds to answer a 1-query request sent ``delay_s`` into a ``len(big)``-query one, and the
    big one's seconds."""
    host, port = url.removeprefix("http://").split(":")

    async def timed(queries: list[str]) -> float:
        conn = RawClient(host, int(port))
        started = time.perf_counter()
        try:
            status, body = await conn.post("/retrieve", request_body(queries))
        finally:
            conn.close()
        if status != 200 or len(orjson.loads(body)["result"]) != len(queries):
            raise RuntimeError(f"{url}: HTTP {status} for {len(queries)} queries")
        return time.perf_counter() - started

    in_flight = asyncio.create_task(timed(big))
    await asyncio.sleep(delay_s)
    small = await timed(big[:1])
    return small, await in_flight


def vs_search_r1(corpus: Path, args, queries: list[str], log_dir: Path) -> None:
    cfg = configs("dense", corpus, args)
    faiss_file = index_file(resolve_index_dir(corpus, cfg))
    ours = EmbeddedRetriever(corpus, cfg, log_path=log_dir / "dense-ours.log")
    theirs = SearchR1Server(args.vs_search_r1, args.search_r1_python, corpus, faiss_file, log_dir / "search-r1.log")
    print(
        f"dense, ours: retriever=dense (max_batch_size {cfg.max_batch_size}, max_wait_ms {cfg.max_wait_ms}, "
        f"search_workers {cfg.search_workers}, piece_ms {cfg.piece_ms}); Search-R1: {args.vs_search_r1}"
    )
    with ours, theirs:
        targets: dict[str, Target] = {"ours": ours, "Search-R1": theirs}
        results = side_by_side("dense", targets, args, queries)
        for result in results:
            print_result(result)
        for round_ in range(args.big_rounds):
            for mode in list(targets)[:: 1 if round_ % 2 == 0 else -1]:
                small, big = uvloop.run(small_during_big(targets[mode].url, queries[:BIG_REQUEST], 0.05))
                print(
                    f"dense {mode:9s}: 1 query sent 50 ms into a {BIG_REQUEST}-query request answered in "
                    f"{small * 1000:.0f} ms (the {BIG_REQUEST}-query request: {big * 1000:.0f} ms)",
                    flush=True,
                )
    ratio = results[0].qps / results[1].qps if results[1].qps else float("inf")
    met = ratio >= TARGET_VS_SEARCH_R1 and results[0].p99_ms < TARGET_P99_S * 1000 and results[0].errors == 0
    print(
        f"dense ours/Search-R1 QPS ratio {ratio:5.1f}x (target >= {TARGET_VS_SEARCH_R1:.0f}x), p99 ours "
        f"{results[0].p99_ms:.0f} ms (target < {TARGET_P99_S * 1000:.0f} ms): {'PASS' if met else 'MISS'}"
    )


def print_result(result: LoadResult) -> None:
    batch = f"  mean batch {result.mean_batch:6.1f}" if result.mean_batch is not None else ""
    print(
        f"{result.kind:5s} {result.mode:9s}: {result.qps:8.1f} QPS  p50 {result.p50_ms:8.1f} ms  "
        f"p99 {result.p99_ms:8.1f} ms  server CPU {result.server_cpu_ms:6.2f} ms/request "
        f"(waiting for a core {result.server_starved_ms:6.2f})  "
        f"client CPU {result.client_cpu_ms:5.2f} ms/request{batch}  requests {result.requests}  "
        f"errors {result.errors}",
        flush=True,
    )


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def shipped_retriever_config(kind: str) -> RetrieverConfig:
    """The retriever group option a user gets with ``retriever=<kind>``, batching knobs included."""
    return to_typed(compose_config([f"retriever={kind}"])).retriever


def configs(kind: str, corpus: Path, args) -> RetrieverConfig:
    base = shipped_retriever_config(kind)
    overrides = {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms}
    base = replace(base, index_dir=None, **{key: value for key, value in overrides.items() if value is not None})
    if kind == "dense" and args.corpus is None and args.dense_vectors == "random":
        base = replace(base, index_dir=str(random_dense_index(corpus, 384, args.seed)))
    return base


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None, help="Search-R1 JSONL corpus (default: synthetic)")
    parser.add_argument("--num-docs", type=int, default=100_000)
    parser.add_argument("--kinds", default="dense,bm25")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--duration", type=float, default=12.0, help="measured seconds per server, over all rounds")
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement slices per server")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds at the start of each slice")
    parser.add_argument("--max-batch-size", type=int, default=None, help="default: conf/retriever/<kind>.yaml")
    parser.add_argument("--max-wait-ms", type=float, default=None, help="default: conf/retriever/<kind>.yaml")
    parser.add_argument("--dense-vectors", choices=("random", "encode"), default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--vs-search-r1", type=Path, default=None, help="Search-R1's retrieval_server.py: dense, ours vs theirs"
    )
    parser.add_argument("--search-r1-python", default=sys.executable, help="a Python with fastapi, uvicorn, datasets")
    parser.add_argument("--big-rounds", type=int, default=2, help="1-query-during-2560 probes per server")
    # The child process that runs Search-R1's server (SearchR1Server starts it).
    parser.add_argument("--serve-search-r1", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--index-file", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def batching_on_vs_off(corpus: Path, args, queries: list[str], log_dir: Path) -> None:
    results = []
    for kind in args.kinds.split(","):
        cfg = configs(kind, corpus, args)
        print(
            f"{kind:5s} retriever={kind}: max_batch_size {cfg.max_batch_size} (off: 1), max_wait_ms {cfg.max_wait_ms}, "
            f"search_workers {cfg.search_workers}"
        )
        for result in run_kind(corpus, cfg, args, queries, log_dir):
            results.append(result)
            print_result(result)
    by_key = {(r.kind, r.mode): r for r in results}
    for kind in args.kinds.split(","):
        on, off = by_key[(kind, "on")], by_key[(kind, "off")]
        ratio = on.qps / off.qps if off.qps else float("inf")
        met = on.requests > 0 and off.requests > 0 and ratio >= TARGET_RATIO[kind] and on.p99_ms < TARGET_P99_S * 1000
        verdict = "PASS" if met else "MISS"
        print(
            f"{kind:5s} on/off QPS ratio {ratio:5.1f}x (target >= {TARGET_RATIO[kind]:.0f}x), "
            f"p99 with batching {on.p99_ms:.0f} ms (target < {TARGET_P99_S * 1000:.0f} ms): {verdict}"
        )


def main() -> None:
    args = parse_args()
    corpus = args.corpus or synthetic_corpus(
        cache_root() / "bench" / f"synthetic-{args.num_docs}.jsonl", args.num_docs, args.seed
    )
    if args.serve_search_r1 is not None:
        serve_search_r1(args.serve_search_r1, args.port, corpus, args.index_file)
        return
    queries = sample_queries(4096, args.seed + 1)
    log_dir = cache_root() / "bench" / "logs"
    print(
        f"corpus {corpus}; {args.concurrency} clients in flight, one query per request; {args.duration:.0f} s "
        f"measured per server in {args.rounds} alternating slices, each after {args.warmup:g} s warm-up; "
        f"{os.cpu_count()} cores shared by the servers and the clients; logs in {log_dir}"
    )
    if args.vs_search_r1 is not None:
        vs_search_r1(corpus, args, queries, log_dir)
    else:
        batching_on_vs_off(corpus, args, queries, log_dir)


if __name__ == "__main__":
    main()
