"""Micro-batching: concurrent requests share one search call in one worker thread."""

import asyncio
import threading
import time

import pytest

from searchr1.retriever.batcher import BatchStats, MicroBatcher


class RecordingSearch:
    """Answers query q with hits (f"{q}#j", j) for j < topk and records each call's batch and thread."""

    def __init__(self, fail: bool = False):
        self.calls: list[list[str]] = []
        self.threads: set[int] = set()
        self.fail = fail

    def __call__(self, queries, topk):
        self.calls.append(list(queries))
        self.threads.add(threading.get_ident())
        if self.fail:
            raise RuntimeError("index exploded")
        return [[({"id": f"{q}#{j}"}, float(j)) for j in range(topk)] for q in queries]


@pytest.fixture
def make_batcher():
    started = []

    def make(search, **kwargs):
        batcher = MicroBatcher(search, **kwargs)
        batcher.start()
        started.append(batcher)
        return batcher

    yield make
    for batcher in started:
        batcher.stop()


async def test_concurrent_requests_are_batched_and_answered_in_order(make_batcher):
    search = RecordingSearch()
    batcher = make_batcher(search, max_batch_size=64, max_wait_ms=50)
    results = await asyncio.gather(*(batcher.submit([f"q{i}"], 2) for i in range(40)))
    assert [r[0][0][0]["id"] for r in results] == [f"q{i}#0" for i in range(40)]
    assert all(len(r) == 1 and len(r[0]) == 2 for r in results)
    assert len(search.calls) < 40 and max(len(c) for c in search.calls) > 1
    assert batcher.stats.queries == 40 and batcher.stats.batches == len(search.calls)
    assert len(search.threads) == 1 and threading.get_ident() not in search.threads
    assert batcher.queue_depth == 0


async def test_batch_size_is_bounded_and_small_requests_are_never_split(make_batcher):
    search = RecordingSearch()
    batcher = make_batcher(search, max_batch_size=5, max_wait_ms=50)
    sizes = [3, 3, 1, 2, 4, 5]
    results = await asyncio.gather(*(batcher.submit([f"r{i}q{j}" for j in range(n)], 1) for i, n in enumerate(sizes)))
    assert [len(r) for r in results] == sizes
    assert all(len(c) <= 5 for c in search.calls)
    for i in range(len(sizes)):  # each request's queries sit together in one call
        assert sum(any(q.startswith(f"r{i}q") for q in c) for c in search.calls) == 1


async def test_a_request_above_the_batch_size_is_split_and_answered_in_order(make_batcher):
    search = RecordingSearch()
    batcher = make_batcher(search, max_batch_size=4, max_wait_ms=0)
    result = await batcher.submit([f"q{i}" for i in range(10)], 2)
    assert [row[0][0]["id"] for row in result] == [f"q{i}#0" for i in range(10)]
    assert [len(c) for c in search.calls] == [4, 4, 2] and batcher.queue_depth == 0


async def test_a_huge_request_does_not_starve_a_small_one(make_batcher):
    """The pieces of a 2560-query request are queued one at a time, so a request that arrives
    while it is being searched waits for one piece, not for the whole request."""
    search = RecordingSearch()

    def slow_search(queries, topk):
        threading.Event().wait(0.02)  # each batch takes a while, like a real index
        return search(queries, topk)

    batcher = make_batcher(slow_search, max_batch_size=256, max_wait_ms=0)
    huge = asyncio.create_task(batcher.submit([f"big{i}" for i in range(2560)], 3))
    await asyncio.sleep(0.005)  # the first piece is being searched
    small = await batcher.submit(["small"], 3)
    assert small[0][0][0]["id"] == "small#0"
    assert not huge.done()
    assert len(await huge) == 2560
    batch_of_small = next(i for i, call in enumerate(search.calls) if "small" in call)
    assert batch_of_small <= 2 and len(search.calls) == 11


def sleeping(search, seconds_per_query):
    """``search`` taking (at least: a loaded machine only adds) ``seconds_per_query`` a query."""

    def timed(queries, topk):
        time.sleep(seconds_per_query * len(queries))
        return search(queries, topk)

    return timed


async def test_pieces_of_a_huge_request_are_sized_by_time_so_a_small_request_waits_little(make_batcher):
    """At 2 ms a query a 64-query piece takes 128 ms; with piece_ms=20 the pieces hold at most 10
    queries, so a request arriving during a 2560-query one waits for ~20 ms pieces, not 128 ms ones."""
    search = RecordingSearch()
    batcher = make_batcher(sleeping(search, 0.002), max_batch_size=64, max_wait_ms=0, piece_ms=20)
    huge = asyncio.create_task(batcher.submit([f"big{i}" for i in range(2560)], 3))
    await asyncio.sleep(0.2)  # several pieces in
    small = await batcher.submit(["small"], 3)
    assert small[0][0][0]["id"] == "small#0" and not huge.done()
    huge.cancel()
    assert search.calls[0] == ["big0"]  # nothing measured yet: one query
    assert 1 < max(len(call) for call in search.calls) <= 10


async def test_the_piece_size_follows_the_measured_search_time(make_batcher):
    slow = make_batcher(sleeping(RecordingSearch(), 0.01), max_batch_size=64, max_wait_ms=0, piece_ms=50)
    assert slow.piece_size() == 1  # nothing measured yet
    await slow.submit([f"q{i}" for i in range(8)], 1)
    assert 1 <= slow.piece_size() <= 5 and slow.seconds_per_query >= 0.01
    fast = make_batcher(RecordingSearch(), max_batch_size=64, max_wait_ms=0, piece_ms=50)
    await fast.submit([f"q{i}" for i in range(8)], 1)
    assert fast.piece_size() == 64  # max_batch_size still bounds a piece


async def test_a_huge_request_whose_client_left_is_not_searched_further(make_batcher):
    search = RecordingSearch()
    batcher = make_batcher(sleeping(search, 0.01), max_batch_size=4, max_wait_ms=0)
    huge = asyncio.create_task(batcher.submit([f"q{i}" for i in range(400)], 1))
    await asyncio.sleep(0.1)
    huge.cancel()
    await asyncio.sleep(0.2)  # what was queued is dropped, nothing more is cut
    assert sum(len(call) for call in search.calls) < 40 and batcher.queue_depth == 0


async def test_batch_size_one_switches_batching_off(make_batcher):
    search = RecordingSearch()
    batcher = make_batcher(search, max_batch_size=1, max_wait_ms=0)
    await asyncio.gather(*(batcher.submit([f"q{i}"], 1) for i in range(20)))
    assert [len(c) for c in search.calls] == [1] * 20


async def test_workers_search_separate_batches_at_the_same_time(make_batcher):
    search = RecordingSearch()
    both_inside = threading.Barrier(2, timeout=5)

    def meeting_search(queries, topk):
        both_inside.wait()  # breaks, failing both requests, unless two searches overlap
        return search(queries, topk)

    batcher = make_batcher(meeting_search, max_batch_size=1, max_wait_ms=0, workers=2)
    results = await asyncio.gather(batcher.submit(["a"], 1), batcher.submit(["b"], 1))
    assert [r[0][0][0]["id"] for r in results] == ["a#0", "b#0"]
    assert batcher.workers == 2 and len(search.threads) == 2
    assert batcher.stats.batches == 2 and batcher.queue_depth == 0


async def test_mixed_topk_is_searched_once_and_cut_per_request(make_batcher):
    search = RecordingSearch()
    batcher = make_batcher(search, max_batch_size=64, max_wait_ms=50)
    small, large = await asyncio.gather(batcher.submit(["a"], 1), batcher.submit(["b"], 4))
    assert len(small[0]) == 1 and len(large[0]) == 4


async def test_search_errors_reach_every_waiting_request_and_the_worker_survives(make_batcher):
    search = RecordingSearch(fail=True)
    batcher = make_batcher(search, max_batch_size=8, max_wait_ms=20)
    outcomes = await asyncio.gather(*(batcher.submit(["q"], 1) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    search.fail = False
    assert await batcher.submit(["again"], 1) == [[({"id": "again#0"}, 0.0)]]


async def test_empty_request_needs_no_search(make_batcher):
    search = RecordingSearch()
    assert await make_batcher(search, max_batch_size=8, max_wait_ms=0).submit([], 3) == []
    assert search.calls == []


def test_histogram_buckets_are_powers_of_two():
    stats = BatchStats()
    for size in (1, 2, 3, 4, 5, 64, 65):
        stats.record(size)
    assert stats.as_dict()["histogram"] == {"<=1": 1, "<=2": 1, "<=4": 2, "<=8": 1, "<=64": 1, "<=128": 1}
    assert stats.as_dict()["mean_size"] == pytest.approx(144 / 7) and stats.max_size == 65


async def test_requests_abandoned_while_queued_are_not_searched(make_batcher):
    gate = threading.Event()
    search = RecordingSearch()

    def slow_search(queries, topk):
        gate.wait(5)
        return search(queries, topk)

    batcher = make_batcher(slow_search, max_batch_size=1, max_wait_ms=0)
    first = asyncio.create_task(batcher.submit(["first"], 1))
    await asyncio.sleep(0.05)  # "first" is being searched; the next ones queue behind it
    abandoned = [asyncio.create_task(batcher.submit([f"gone{i}"], 1)) for i in range(3)]
    kept = asyncio.create_task(batcher.submit(["kept"], 1))
    await asyncio.sleep(0.05)
    for task in abandoned:
        task.cancel()
    gate.set()
    assert (await first)[0][0][0]["id"] == "first#0" and (await kept)[0][0][0]["id"] == "kept#0"
    assert search.calls == [["first"], ["kept"]]
    assert batcher.queue_depth == 0
