"""Load test of the retrieval server: micro-batching on vs off, side by side in one run.

N concurrent clients (default 256, Miles' search_concurrency) each send one query per request,
as Miles does, for ``--duration`` seconds against a real server subprocess on 127.0.0.1. Each
index kind is served twice, batching on (the config's max_batch_size / max_wait_ms) and off
(max_batch_size=1), and we print QPS, p50/p99 latency and the on/off QPS ratio.
Targets: >= 5x for dense, >= 3x for BM25, p99 < 1 s with batching on.

Without ``--corpus`` a synthetic corpus of ``--num-docs`` passages (default 100k) is generated
in the cache. Its words are whole-word entries of the encoder's vocabulary, so queries have
realistic token counts (3-6 words). Encoding 100k passages needs a GPU or a long CPU run, so
for the synthetic corpus the dense index holds random unit vectors by default (``--dense-vectors
encode`` builds it for real); query encoding and the FAISS search, the work the server does
per request, are real either way. The index is a bare IndexFlatIP file, the layout of
Search-R1's e5_Flat.index.

    python benchmarks/retriever_load.py --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import orjson
import uvloop

from searchr1.config.compose import compose_config
from searchr1.paths import cache_root
from searchr1.config.schema import RetrieverConfig
from searchr1.config.validate import to_typed
from searchr1.retriever.embedded import EmbeddedRetriever
from searchr1.retriever.encoder import resolve_encoder

TARGET_RATIO = {"dense": 5.0, "bm25": 3.0}
TARGET_P99_S = 1.0


@dataclass
class LoadResult:
    kind: str
    mode: str
    requests: int
    errors: int
    qps: float
    p50_ms: float
    p99_ms: float
    mean_batch: float


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
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = int(header.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def drive(
    url: str, queries: list[str], concurrency: int, warmup_s: float, duration_s: float
) -> tuple[list[float], int]:
    """Closed loop: each client sends its next query as soon as the last one is answered.
    Counted: requests answered inside the measurement window (after the warm-up)."""
    host, port = url.removeprefix("http://").split(":")
    bodies = [json.dumps({"queries": [q], "topk": 3, "return_scores": True}).encode() for q in queries]
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    window = (start + warmup_s, start + warmup_s + duration_s)

    async def client(worker: int) -> None:
        nonlocal errors
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
    return latencies, errors


def wait_drained(url: str, timeout_s: float = 60.0) -> None:
    """Let the server drop or finish what the cancelled clients left queued before the next slice."""
    deadline = time.monotonic() + timeout_s
    while get_json(url + "/metrics")["queue_depth"] > 0 and time.monotonic() < deadline:
        time.sleep(0.1)


def run_kind(corpus: Path, cfg: RetrieverConfig, args, queries: list[str], log_dir: Path) -> list[LoadResult]:
    """Both servers run side by side; measurement slices alternate on/off so both see the same
    background load (this machine's cores are shared)."""
    modes = {"on": cfg, "off": replace(cfg, max_batch_size=1, max_wait_ms=0.0)}
    servers = {
        mode: EmbeddedRetriever(corpus, c, log_path=log_dir / f"{cfg.kind}-{mode}.log") for mode, c in modes.items()
    }
    latencies: dict[str, list[float]] = {mode: [] for mode in modes}
    errors = dict.fromkeys(modes, 0)
    slice_s = args.duration / args.rounds
    try:
        for server in servers.values():
            server.start()
        for _ in range(args.rounds):
            for mode, server in servers.items():
                # uvloop on the load side as on the server: the generator shares the two cores.
                got, failed = uvloop.run(drive(server.url, queries, args.concurrency, args.warmup, slice_s))
                latencies[mode] += got
                errors[mode] += failed
                wait_drained(server.url)
        batches = {mode: get_json(server.url + "/metrics")["batch"]["mean_size"] for mode, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    return [_summary(cfg.kind, mode, latencies[mode], errors[mode], args.duration, batches[mode]) for mode in modes]


def _summary(
    kind: str, mode: str, latencies: list[float], errors: int, duration_s: float, mean_batch: float
) -> LoadResult:
    lat = np.array(latencies) if latencies else np.zeros(1)
    return LoadResult(
        kind=kind,
        mode=mode,
        requests=len(latencies),
        errors=errors,
        qps=len(latencies) / duration_s,
        p50_ms=float(np.percentile(lat, 50) * 1000),
        p99_ms=float(np.percentile(lat, 99) * 1000),
        mean_batch=mean_batch,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None, help="Search-R1 JSONL corpus (default: synthetic)")
    parser.add_argument("--num-docs", type=int, default=100_000)
    parser.add_argument("--kinds", default="dense,bm25")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--duration", type=float, default=12.0, help="measured seconds per server, over all rounds")
    parser.add_argument("--rounds", type=int, default=3, help="alternating on/off measurement slices per server")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds at the start of each slice")
    parser.add_argument("--max-batch-size", type=int, default=None, help="default: conf/retriever/<kind>.yaml")
    parser.add_argument("--max-wait-ms", type=float, default=None, help="default: conf/retriever/<kind>.yaml")
    parser.add_argument("--dense-vectors", choices=("random", "encode"), default="random")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    corpus = args.corpus or synthetic_corpus(
        cache_root() / "bench" / f"synthetic-{args.num_docs}.jsonl", args.num_docs, args.seed
    )
    queries = sample_queries(4096, args.seed + 1)
    log_dir = cache_root() / "bench" / "logs"
    print(
        f"corpus {corpus}; {args.concurrency} clients in flight, one query per request; {args.duration:.0f} s "
        f"measured per server in {args.rounds} alternating on/off slices, each after {args.warmup:.0f} s warm-up; "
        f"{os.cpu_count()} cores shared by the servers and the clients; logs in {log_dir}"
    )
    results = []
    for kind in args.kinds.split(","):
        cfg = configs(kind, corpus, args)
        print(
            f"{kind:5s} retriever={kind}: max_batch_size {cfg.max_batch_size} (off: 1), max_wait_ms {cfg.max_wait_ms}, "
            f"search_workers {cfg.search_workers}"
        )
        for result in run_kind(corpus, cfg, args, queries, log_dir):
            results.append(result)
            print(
                f"{kind:5s} batching {result.mode:3s}: {result.qps:8.1f} QPS  p50 {result.p50_ms:8.1f} ms  "
                f"p99 {result.p99_ms:8.1f} ms  mean batch {result.mean_batch:6.1f}  "
                f"requests {result.requests}  errors {result.errors}",
                flush=True,
            )
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


if __name__ == "__main__":
    main()
