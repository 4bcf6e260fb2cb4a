"""One huge request must not starve the others: a 1-query request sent while a 2560-query request
(Search-R1's largest: train_batch_size 512 x n_agent 5) is being searched, against the shipped BM25
retriever over retriever_load.py's synthetic corpus.

The server searches a big request in pieces of ``retriever.max_batch_size`` queued one at a time, so
the small request waits for about one piece, not for the whole big request. Prints both latencies.

    python benchmarks/retriever_big_request.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace

import aiohttp
from retriever_load import sample_queries, shipped_retriever_config, synthetic_corpus  # the sibling script

from searchr1.paths import cache_root
from searchr1.retriever.embedded import EmbeddedRetriever

BIG = 512 * 5


async def timed_post(session: aiohttp.ClientSession, url: str, queries: list[str]) -> float:
    started = time.perf_counter()
    async with session.post(url + "/retrieve", json={"queries": queries, "topk": 3}) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body}")
    return time.perf_counter() - started


async def measure(url: str, rounds: int, delay_s: float, seed: int) -> None:
    big = sample_queries(BIG, seed)
    async with aiohttp.ClientSession() as session:
        await timed_post(session, url, big[:256])  # warm-up
        alone = min([await timed_post(session, url, [q]) for q in big[:5]])
        big_alone = await timed_post(session, url, big)
        print(f"alone: 1 query {alone * 1000:.0f} ms, {BIG} queries {big_alone * 1000:.0f} ms")
        for _ in range(rounds):
            in_flight = asyncio.create_task(timed_post(session, url, big))
            await asyncio.sleep(delay_s)
            small = await timed_post(session, url, big[:1])
            print(
                f"1 query sent {delay_s * 1000:.0f} ms into a {BIG}-query request: {small * 1000:.0f} ms "
                f"(the {BIG}-query request: {await in_flight * 1000:.0f} ms)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-docs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=50.0, help="when the small request follows the big one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = synthetic_corpus(cache_root() / "bench" / f"synthetic-{args.num_docs}.jsonl", args.num_docs, args.seed)
    cfg = shipped_retriever_config("bm25")
    print(f"corpus {corpus}; retriever=bm25: max_batch_size {cfg.max_batch_size}, max_queries {cfg.max_queries}")
    log = cache_root() / "bench" / "logs" / "big-request.log"
    with EmbeddedRetriever(corpus, replace(cfg, faiss_gpu=False), log_path=log) as retriever:
        asyncio.run(measure(retriever.url, args.rounds, args.delay_ms / 1000.0, args.seed))


if __name__ == "__main__":
    main()
